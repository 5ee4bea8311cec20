"""Fixtures for the station agent: configs, generated images, a fake service, an MQTT broker."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import EdgeConfig, from_dict
from tests.edge.fakes import KEY, FakeService
from tests.support.mosquitto import require_mosquitto


def toml_text(data: dict, prefix: str = "") -> str:
    """A minimal TOML writer for test configs (tables, strings, numbers, bools, string lists)."""
    scalars, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {_value(value)}")
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in tables:
        out.append(toml_text(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out) + "\n"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def base_settings(tmp_path: Path, url: str = "", model: Path | None = None) -> dict:
    """A working config as a dict: folder source in tmp_path/in, fast sync."""
    settings = {
        "station": {"name": "S1", "product": "widget"},
        "paths": {"data_dir": str(tmp_path / "data")},
        "source": {"kind": "folder", "folder": {"path": str(tmp_path / "in"), "poll_s": 0.05,
                                                "serial_from_name": True}},
        "sync": {"interval_s": 0.1, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
    }
    if url:
        settings["service"] = {"url": url, "api_key": KEY, "timeout_s": 3.0}
    if model is not None:
        settings["model"] = {"path": str(model)}
    return settings


def merge(base: dict, extra: dict) -> dict:
    """base updated recursively with extra."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path, tiny_model):
    """make_config(url="", **overrides) -> EdgeConfig (fixed tiny model unless url is given)."""

    def make(url: str = "", **overrides: dict) -> EdgeConfig:
        settings = base_settings(tmp_path, url, None if url else tiny_model)
        return from_dict(merge(settings, overrides), base_dir=tmp_path)

    return make


def write_image(path: Path, level: int, size: int = 64, seed: int = 0) -> Path:
    """A textured PNG/JPEG around grey level `level` (the tiny model fails bright images)."""
    rng = np.random.default_rng(seed)
    image = np.clip(level + rng.integers(-25, 26, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    assert ok
    tmp = path.with_name("." + path.name)
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
    return path


@pytest.fixture
def fake_service():
    service = FakeService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def broker():
    """A real mosquitto on a free loopback port (skipped if missing; a failure under CI)."""
    server = require_mosquitto()
    yield server
    server.stop()
