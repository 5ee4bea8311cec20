"""Batch uploader: backoff, batching, idempotent re-sends, outages, rejected items, images."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from edge.client import ServiceClient, ServiceRefused, ServiceUnavailable
from edge.config import RetentionConfig, ServiceConfig, SyncConfig
from edge.outbox import Outbox
from edge.sync import Syncer, next_backoff
from tests.edge.fakes import KEY


def test_next_backoff_doubles_caps_and_jitters():
    no_jitter = [next_backoff(a, base=1, cap=30, rand=lambda: 0.0) for a in range(0, 8)]
    assert no_jitter == [0, 1, 2, 4, 8, 16, 30, 30]
    assert next_backoff(3, base=1, cap=30, jitter=0.25, rand=lambda: 1.0) == 3.0
    assert next_backoff(10_000, base=1, cap=300, rand=lambda: 0.0) == 300  # no overflow
    spread = {round(next_backoff(4, base=1, cap=300), 3) for _ in range(50)}
    assert len(spread) > 10 and all(6.0 <= d <= 8.0 for d in spread)


def _syncer(tmp_path, url: str, batch: int = 3, key: str = KEY) -> Syncer:
    client = ServiceClient(ServiceConfig(url=url, api_key=key, timeout_s=2))
    config = SyncConfig(batch_size=batch, interval_s=0.05, backoff_base_s=0.05,
                        backoff_max_s=0.1)
    return Syncer(Outbox(tmp_path), client, config, RetentionConfig())


def _add(box: Outbox, n: int, verdict: str = "pass", image: bytes | None = None) -> list[str]:
    ids = []
    for _ in range(n):
        rid = str(uuid.uuid4())
        box.add({"id": rid, "verdict": verdict, "product": "widget"}, image, "png",
                upload=image is not None)
        ids.append(rid)
    return ids


def test_sends_in_batches_until_drained(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=3)
    ids = _add(syncer.outbox, 7)
    assert [syncer.sync_once() for _ in range(4)] == [3, 3, 1, 0]
    assert fake_service.posts == [3, 3, 1]
    assert set(fake_service.results) == set(ids)
    assert syncer.outbox.counts()["sent"] == 7


def test_outage_keeps_results_and_resend_is_idempotent(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=10)
    ids = _add(syncer.outbox, 4)
    fake_service.down = True
    with pytest.raises(ServiceUnavailable):
        syncer.sync_once()
    assert syncer.outbox.counts()["pending"] == 4  # released, nothing lost
    fake_service.down = False
    # The service recorded two already (a reply lost on the way back): re-sending is harmless.
    fake_service.post_results([{"id": i} for i in ids[:2]])
    assert syncer.sync_once() == 4
    assert len(fake_service.results) == 4


def test_refused_key_is_an_error_and_keeps_results(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, key="wrong")
    _add(syncer.outbox, 2)
    with pytest.raises(ServiceRefused, match="bad key"):
        syncer.sync_once()
    assert syncer.outbox.counts()["pending"] == 2


def test_rejected_items_back_off_alone(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=10)
    good, bad = _add(syncer.outbox, 3), _add(syncer.outbox, 1)
    fake_service.reject_ids = set(bad)
    assert syncer.sync_once() == 3
    assert syncer.sync_once() == 0  # the rejected one waits (its own, long backoff)
    counts = syncer.outbox.counts()
    assert (counts["pending"], counts["sent"], counts["with_errors"]) == (1, 3, 1)
    assert "unknown product" in syncer.outbox.last_error()
    assert set(fake_service.results) == set(good)


def test_images_follow_their_results(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=10)
    ids = _add(syncer.outbox, 2, verdict="fail", image=b"\x89PNG fake")
    assert syncer.upload_images() == 0  # results first
    syncer.sync_once()
    assert syncer.upload_images() == 2
    assert set(fake_service.images) == set(ids)
    assert syncer.outbox.counts()["images_waiting"] == 0


def test_run_loop_survives_an_outage(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=2)
    fake_service.down = True
    ids = _add(syncer.outbox, 5)
    stop = threading.Event()
    thread = threading.Thread(target=syncer.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.4)
        assert syncer.failures >= 2 and not fake_service.results
        assert "HTTP 503" in syncer.outbox.meta()["last_sync_error"]
        fake_service.down = False
        deadline = time.monotonic() + 10
        while len(fake_service.results) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        syncer.wake()
        thread.join(timeout=5)
    assert set(fake_service.results) == set(ids)
    assert syncer.failures == 0
    assert syncer.outbox.meta()["last_sync_error"] is None
