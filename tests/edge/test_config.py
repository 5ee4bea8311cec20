"""Station config: strict TOML validation with messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import API_KEY_ENV, ConfigError, from_dict, load
from tests.edge.conftest import base_settings, merge, toml_text

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path) -> dict:
    return base_settings(tmp_path, url="http://127.0.0.1:9", model=None)


def test_example_config_is_valid(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "k")
    config = load(ROOT / "examples" / "station.toml")
    assert config.station.name == "line1-cam1"
    assert config.source.folder.serial_from_name is True
    assert config.service.api_key == "k"  # taken from the environment


def test_load_resolves_relative_paths(tmp_path):
    settings = merge(_settings(tmp_path), {"paths": {"data_dir": "state"}})
    path = tmp_path / "conf" / "station.toml"
    path.parent.mkdir()
    path.write_text(toml_text(settings))
    config = load(path)
    assert config.data_dir == path.parent / "state"
    assert config.sync.backoff_max_s == 0.2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"station": {"nmae": "x"}}, "unknown key 'nmae' in [station]"),
        ({"sink": {}}, "unknown key 'sink' in the top level"),
        ({"source": {"folder": {"poll": 1}}}, "unknown key 'poll' in [source.folder]"),
        ({"sync": {"batch_size": "10"}}, "sync.batch_size must be an integer"),
        ({"sync": {"batch_size": 5000}}, "sync.batch_size must be 1..1000"),
        ({"guard": {"enabled": 1}}, "guard.enabled must be true or false"),
        ({"guard": {"drift_z": "4"}}, "guard.drift_z must be a number"),
        ({"mqtt": {"publish": ["fial"]}}, "mqtt.publish item must be one of"),
        ({"mqtt": {"port": True}}, "mqtt.port must be an integer"),
        ({"source": {"kind": "ftp"}}, "source.kind must be one of folder, camera, none"),
        ({"retention": {"keep_images": "some"}}, "retention.keep_images must be one of"),
        ({"service": {"url": "qc-server:8000"}}, "service.url must start with http://"),
        ({"service": {"api_key": ""}}, "service.api_key is empty"),
        ({"station": {"product": ""}}, "[station] needs name and product"),
        ({"source": {"kind": "camera", "camera": {"trigger": "mqtt"}}}, "needs [mqtt] host"),
        ({"sync": {"backoff_max_s": 0.01}}, "sync.backoff_max_s must be >="),
    ],
)
def test_invalid_settings_name_the_key(tmp_path, monkeypatch, extra, message):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ConfigError) as exc:
        from_dict(merge(_settings(tmp_path), extra))
    assert message in str(exc.value)


def test_offline_station_needs_a_local_model(tmp_path):
    settings = _settings(tmp_path)
    del settings["service"]
    with pytest.raises(ConfigError, match="model.path"):
        from_dict(settings)


def test_folder_source_needs_a_path(tmp_path):
    settings = _settings(tmp_path)
    settings["source"] = {"kind": "folder"}
    with pytest.raises(ConfigError, match=r"\[source.folder\]"):
        from_dict(settings)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load(tmp_path / "missing.toml")
