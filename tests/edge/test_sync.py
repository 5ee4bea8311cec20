"""Batch uploader: backoff, batching, idempotent re-sends, outages, rejected items, server
errors on one result, a result too large on its own, images."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

import pytest

from edge.client import ServiceClient, ServiceRefused, ServiceUnavailable
from edge.config import RetentionConfig, ServiceConfig, SyncConfig
from edge.outbox import Outbox
from edge.sync import REJECT_BACKOFF_BASE_S, Syncer, grown, halved, next_backoff, suspects_content
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


def test_batch_size_decisions():
    faults = [s for s in (None, 429, 500, 501, 502, 503, 504) if suspects_content(s)]
    assert faults == [500, 501]  # no reply, "too many requests" and gateway errors are outages
    assert [halved(n) for n in (8, 5, 1)] == [4, 2, 1]
    assert [grown(n, 8) for n in (1, 3, 4, 8)] == [2, 6, 8, 8]


def _drain(syncer: Syncer, rounds: int = 30) -> int:
    """sync_once until nothing is due, server errors included; returns the rounds it took."""
    for n in range(1, rounds + 1):
        try:
            if syncer.sync_once() == 0:
                return n
        except (ServiceUnavailable, ServiceRefused):
            pass
    raise AssertionError(f"outbox not drained in {rounds} rounds")


def _row(box: Outbox, result_id: str) -> tuple[str, int, float]:
    return box._db.execute(
        "SELECT state, attempts, next_try FROM results WHERE id = ?", (result_id,)
    ).fetchone()


def test_poison_result_is_set_aside_and_the_others_go_through(tmp_path, fake_service, caplog):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    box = syncer.outbox
    before, poison, after = _add(box, 5), _add(box, 1), _add(box, 14)
    fake_service.poison_ids = set(poison)
    with caplog.at_level(logging.ERROR, logger="edge.sync"):
        assert _drain(syncer) <= 16
    assert sorted(fake_service.received_ids) == sorted(before + after)  # each exactly once
    assert fake_service.failed_posts[-1] == 1  # the poison alone
    state, attempts, next_try = _row(box, poison[0])
    assert (state, attempts) == ("pending", 1)
    assert time.time() + 0.7 * REJECT_BACKOFF_BASE_S < next_try  # its own wait, not claimed now
    assert box.counts()["sent"] == 19
    assert any(poison[0] in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    # Due again and still failing: another attempt, a longer wait; nothing else is re-sent.
    box._db.execute("UPDATE results SET next_try = 0 WHERE id = ?", (poison[0],))
    _drain(syncer)
    state, attempts, next_try = _row(box, poison[0])
    assert (state, attempts) == ("pending", 2)
    assert time.time() + 1.4 * REJECT_BACKOFF_BASE_S < next_try
    assert len(fake_service.received_ids) == 19


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens: connection refused


@pytest.mark.parametrize("outage", ["connection refused", "HTTP 503"])
def test_outages_keep_whole_batches(tmp_path, fake_service, outage):
    url = _closed_url() if outage == "connection refused" else fake_service.url
    syncer = _syncer(tmp_path, url, batch=4)
    _add(syncer.outbox, 6)
    fake_service.down = True
    for _ in range(4):
        with pytest.raises(ServiceUnavailable, match=outage.split()[-1]) as info:
            syncer.sync_once()
    assert info.value.status == (None if outage == "connection refused" else 503)
    assert syncer.batch_size == 4
    rows = syncer.outbox._db.execute("SELECT state, attempts, next_try FROM results").fetchall()
    assert all(r[0] == "pending" and r[1] == 0 and r[2] <= time.time() for r in rows)
    fake_service.down = False
    syncer.client = ServiceClient(ServiceConfig(url=fake_service.url, api_key=KEY, timeout_s=2))
    assert [syncer.sync_once(), syncer.sync_once()] == [4, 2]


def test_batch_size_grows_back_after_the_poison_is_set_aside(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    poison, _others = _add(syncer.outbox, 1), _add(syncer.outbox, 30)
    fake_service.poison_ids = set(poison)
    with pytest.raises(ServiceUnavailable, match="HTTP 500") as info:
        syncer.sync_once()
    assert info.value.status == 500 and syncer.batch_size == 4
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            syncer.sync_once()
    assert fake_service.failed_posts == [8, 4, 2, 1] and syncer.batch_size == 1
    assert syncer.step() is True  # a full batch went through: more right away
    _drain(syncer)
    assert fake_service.posts == [1, 2, 4, 8, 8, 7]
    assert syncer.batch_size == 8


def test_regrowth_stays_under_the_size_the_service_refused(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    poison, _others = _add(syncer.outbox, 1), _add(syncer.outbox, 20)
    fake_service.max_batch, fake_service.poison_ids = 5, set(poison)
    with pytest.raises(ServiceRefused, match="413"):
        syncer.sync_once()
    assert (syncer.batch_size, syncer.batch_limit) == (4, 4)
    _drain(syncer)
    assert fake_service.failed_posts == [4, 2, 1]
    assert fake_service.posts == [1, 2, 4, 4, 4, 4, 1]
    assert fake_service.too_large_posts == [8]  # never above the limit again
    assert syncer.batch_size == 4


def _due_now(box: Outbox, result_id: str) -> None:
    box._db.execute("UPDATE results SET next_try = 0 WHERE id = ?", (result_id,))


def test_a_poison_due_again_goes_alone_and_the_batch_stays_full(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    box = syncer.outbox
    poison, others = _add(box, 1), _add(box, 7)
    fake_service.poison_ids = set(poison)
    _drain(syncer)
    assert fake_service.failed_posts == [8, 4, 2, 1]  # found once by halving
    assert syncer.batch_size == 8
    newer = _add(box, 12)
    _due_now(box, poison[0])
    assert syncer.step() is True  # no error raised: the poison alone, then a full batch
    assert fake_service.failed_posts == [8, 4, 2, 1, 1]  # no search again
    assert fake_service.posts[-1] == 8 and syncer.batch_size == 8
    state, attempts, next_try = _row(box, poison[0])
    assert (state, attempts) == ("pending", 2)
    assert time.time() + 1.4 * REJECT_BACKOFF_BASE_S < next_try
    assert syncer.sync_once() == 4
    assert fake_service.failed_posts == [8, 4, 2, 1, 1]
    assert sorted(fake_service.received_ids) == sorted(others + newer)  # each exactly once


def test_a_result_that_failed_before_goes_alone_and_may_succeed(tmp_path, fake_service):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    box = syncer.outbox
    bad = _add(box, 1)
    fake_service.reject_ids = set(bad)
    assert syncer.sync_once() == 0
    fake_service.reject_ids = set()  # someone fixed the cause (e.g. added the product)
    _due_now(box, bad[0])
    newer = _add(box, 3)
    assert syncer.sync_once() == 4
    assert fake_service.posts == [1, 1, 3]
    assert set(fake_service.results) == set(bad + newer)


def test_a_result_too_large_alone_is_set_aside_and_the_others_go_on(
    tmp_path, fake_service, caplog
):
    syncer = _syncer(tmp_path, fake_service.url, batch=8)
    box = syncer.outbox
    before, huge = _add(box, 3), str(uuid.uuid4())
    box.add({"id": huge, "verdict": "fail", "product": "widget", "notes": "x" * 5000})
    after = _add(box, 12)
    fake_service.max_body = 4000  # eight small results fit, the huge one never does
    with caplog.at_level(logging.ERROR, logger="edge.sync"):
        _drain(syncer)
    assert sorted(fake_service.received_ids) == sorted(before + after)  # each exactly once
    assert fake_service.too_large_posts == [8, 4, 2, 1]
    state, attempts, next_try = _row(box, huge)
    assert (state, attempts) == ("pending", 1)
    assert time.time() + 0.7 * REJECT_BACKOFF_BASE_S < next_try
    assert any(
        huge in r.getMessage() and "too large for the service" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )
    assert (syncer.batch_size, syncer.batch_limit) == (8, 8)  # the 413s were its fault
    # Due again: alone, refused again, a longer wait; the batch behind it is full.
    newer = _add(box, 8)
    _due_now(box, huge)
    assert syncer.sync_once() == 8
    assert fake_service.too_large_posts == [8, 4, 2, 1, 1]
    assert _row(box, huge)[:2] == ("pending", 2)
    assert box.counts()["sent"] == 23 and box.counts()["pending"] == 1  # nothing deleted
    assert sorted(fake_service.received_ids) == sorted(before + after + newer)
