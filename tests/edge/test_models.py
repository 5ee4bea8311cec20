"""Model cache: download, checksum, atomic swap, last good kept, offline start, new versions."""

from __future__ import annotations

import json

import pytest

from edge.client import ServiceClient, ServiceUnavailable
from edge.config import ServiceConfig
from edge.models import ModelCache, ModelError
from qc.modelpack import file_sha256
from tests.edge.fakes import KEY
from tests.support.tiny_model import make_tiny_model


@pytest.fixture
def versions(tmp_path):
    """Three tiny model files for product widget, and one for another product."""
    folder = tmp_path / "models-src"
    folder.mkdir()
    out = {v: make_tiny_model(folder / f"{v}.onnx", version=v) for v in ("v1", "v2", "v3")}
    out["gear"] = make_tiny_model(folder / "gear.onnx", product="gear", version="g1")
    return out


def _cache(tmp_path, url: str) -> ModelCache:
    client = ServiceClient(ServiceConfig(url=url, api_key=KEY, timeout_s=2))
    return ModelCache(tmp_path / "cache", "widget", client)


def _publish(fake, path, version: str) -> None:
    fake.set_model(path.read_bytes(), version)


def test_download_verify_and_work_offline(tmp_path, fake_service, versions):
    _publish(fake_service, versions["v1"], "v1")
    cache = _cache(tmp_path, fake_service.url)
    assert cache.load() is None  # empty cache
    assert cache.refresh() is True
    assert cache.version == "v1" and cache.sha256 == file_sha256(versions["v1"])
    assert cache.refresh() is False  # unchanged
    assert cache.state()["current"]["version"] == "v1"
    assert not list(cache.folder.glob(".download-*"))
    offline = _cache(tmp_path, "http://127.0.0.1:9")
    assert offline.load() is not None and offline.version == "v1"
    with pytest.raises(ServiceUnavailable):
        offline.refresh()
    assert offline.poll_once() is False and offline.version == "v1"


def test_checksum_mismatch_is_refused_and_last_good_kept(tmp_path, fake_service, versions):
    _publish(fake_service, versions["v1"], "v1")
    cache = _cache(tmp_path, fake_service.url)
    cache.refresh()
    _publish(fake_service, versions["v2"], "v2")
    fake_service.sha_override = "0" * 64
    with pytest.raises(ModelError, match="SHA-256"):
        cache.refresh()
    assert cache.version == "v1"
    assert sorted(p.name for p in cache.folder.glob("*.onnx")) == [f"{cache.sha256}.onnx"]
    fake_service.sha_override = None  # the transfer is fine again: taken at the next poll
    assert cache.poll_once() is True and cache.version == "v2"


def test_new_version_swaps_and_keeps_previous(tmp_path, fake_service, versions):
    cache = _cache(tmp_path, fake_service.url)
    for v in ("v1", "v2", "v3"):
        _publish(fake_service, versions[v], v)
        old = cache.inspector
        assert cache.refresh() is True
        assert cache.inspector is not old
    state = cache.state()
    assert (state["current"]["version"], state["previous"]["version"]) == ("v3", "v2")
    assert len(list(cache.folder.glob("*.onnx"))) == 2  # v1 deleted
    # a rollback to the previous model needs no download
    _publish(fake_service, versions["v2"], "v2")
    fake_service.model = b"not served"  # would fail the checksum if it were downloaded
    fake_service.sha_override = file_sha256(versions["v2"])
    assert cache.refresh() is True and cache.version == "v2"


@pytest.mark.parametrize(("payload", "message"), [("garbage", "refused"), ("gear", "'gear'")])
def test_unusable_model_is_refused_once(tmp_path, fake_service, versions, payload, message):
    _publish(fake_service, versions["v1"], "v1")
    cache = _cache(tmp_path, fake_service.url)
    cache.refresh()
    data = b"not an onnx file" if payload == "garbage" else versions["gear"].read_bytes()
    fake_service.set_model(data, "bad")
    with pytest.raises(ModelError, match=message):
        cache.refresh()
    assert cache.version == "v1"
    assert cache.refresh() is False  # not downloaded again every poll


def test_corrupt_cache_falls_back_to_previous(tmp_path, fake_service, versions):
    cache = _cache(tmp_path, fake_service.url)
    for v in ("v1", "v2"):
        _publish(fake_service, versions[v], v)
        cache.refresh()
    current = cache.folder / f"{cache.sha256}.onnx"
    current.write_bytes(current.read_bytes()[:100])  # a disk error, say
    restarted = _cache(tmp_path, "http://127.0.0.1:9")
    assert restarted.load() is not None and restarted.version == "v1"


def test_no_active_model_and_fixed_model(tmp_path, fake_service, versions):
    cache = _cache(tmp_path, fake_service.url)
    assert cache.refresh() is False and cache.inspector is None
    fixed = ModelCache(tmp_path / "fixed", "widget", None, fixed_path=versions["v3"])
    assert fixed.load() is not None and fixed.version == "v3"
    assert fixed.refresh() is False
    assert json.loads(json.dumps(fixed.state())) == {"current": None, "previous": None}


def test_a_percent_encoded_version_label_is_decoded(tmp_path, fake_service, versions):
    """The service percent-encodes X-Model-Version (issue 14, row 6): any script arrives."""
    from urllib.parse import quote

    label = "деталь-2026-12-01"
    _publish(fake_service, versions["v1"], quote(label, safe=""))
    cache = _cache(tmp_path, fake_service.url)
    assert cache.refresh() is True
    assert cache.state()["current"]["version"] == label  # as recorded from the header
