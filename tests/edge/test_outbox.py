"""Outbox: WAL durability, crash recovery (kill -9 of a writer), retention policy."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from edge.config import RetentionConfig
from edge.outbox import DAY, Outbox

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, uuid
from edge.outbox import Outbox
box = Outbox(sys.argv[1])
n = 0
while True:
    rid = str(uuid.uuid4())
    box.add({"id": rid, "verdict": "fail" if n % 2 else "pass"}, b"x" * 100, "jpg", upload=True)
    n += 1
    if n == 20:
        box.claim(5)  # five rows in flight when the kill comes
        print("claimed", flush=True)
    print(rid, flush=True)
"""


def _result(verdict: str = "pass") -> dict:
    return {"id": str(uuid.uuid4()), "verdict": verdict}


def test_wal_and_claim_cycle(tmp_path):
    box = Outbox(tmp_path)
    assert box.journal_mode() == "wal"
    first, second = _result(), _result("fail")
    assert box.add(first) and box.add(second)
    assert not box.add(first)  # same id: recorded once
    items = box.claim(10)
    assert [i.id for i in items] == [first["id"], second["id"]]
    assert box.claim(10) == []  # in flight, not claimed twice
    box.mark_sent([first["id"]])
    box.release([second["id"]], next_try=time.time() + 60, error="HTTP 503", count=True)
    assert box.claim(10) == []  # not due yet
    assert box.claim(10, now=time.time() + 61)[0].attempts == 1
    counts = box.counts()
    assert (counts["pending"], counts["sending"], counts["sent"]) == (0, 1, 1)
    box.close()


def test_claim_keeps_results_that_failed_before_apart(tmp_path):
    box = Outbox(tmp_path)
    old, fresh = _result(), _result()
    box.add(old)
    box.add(fresh)
    box.claim(1)
    box.release([old["id"]], next_try=0, error="HTTP 500", count=True)
    assert [i.id for i in box.claim(10, retried=False)] == [fresh["id"]]
    box.release([fresh["id"]], next_try=0, error="HTTP 503")  # an outage: no attempt counted
    assert [(i.id, i.attempts) for i in box.claim(10, retried=True)] == [(old["id"], 1)]
    assert [i.id for i in box.claim(10)] == [fresh["id"]]
    box.close()


def test_restart_requeues_rows_left_sending(tmp_path):
    box = Outbox(tmp_path)
    for _ in range(3):
        box.add(_result())
    box.claim(2)
    box.close()
    box = Outbox(tmp_path)  # "restart"
    assert box.counts()["sending"] == 2
    assert box.requeue_in_flight() == 2
    assert len(box.claim(10)) == 3
    box.close()


def test_kill_9_of_a_writer_loses_no_committed_result(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    acknowledged, claimed = [], False
    deadline = time.monotonic() + 30
    try:
        while len(acknowledged) < 60 and time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if line == "claimed":
                claimed = True
            elif line:
                acknowledged.append(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert claimed and len(acknowledged) >= 60
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    box = Outbox(tmp_path)
    assert box.requeue_in_flight() == 5
    stored = {i.id for i in box.claim(10_000)}
    assert set(acknowledged) <= stored
    # an image file written just before the kill, without its row, is an orphan
    assert box.remove_orphans() <= 1
    for result_id in acknowledged[:3]:
        assert list((tmp_path / "images").glob(f"*/{result_id}.jpg"))
    box.close()


def _aged(box: Outbox, result_id: str, days: float, sent: bool = False) -> None:
    """Backdate a row (tests of the age limits)."""
    then = time.time() - days * DAY
    box._db.execute("UPDATE results SET created_at = ?, sent_at = ? WHERE id = ?",
                    (then, then if sent else None, result_id))
    if sent:
        box._db.execute("UPDATE results SET state = 'sent' WHERE id = ?", (result_id,))


def test_retention_by_age_keeps_unsent_rows(tmp_path):
    box = Outbox(tmp_path)
    old_pass, old_fail, new_fail = _result(), _result("fail"), _result("fail")
    for r in (old_pass, old_fail, new_fail):
        box.add(r, b"img", "jpg", upload=True)
    _aged(box, old_pass["id"], 3)
    _aged(box, old_fail["id"], 40)
    removed = box.enforce(RetentionConfig(pass_image_days=2, fail_image_days=30))
    assert removed == {"images_by_age": 2, "images_by_size": 0, "rows": 0}
    assert box.counts()["images"] == 1
    assert box.counts()["pending"] == 3  # results are never dropped before they are sent
    box.close()


def test_retention_by_size_drops_passed_images_first(tmp_path):
    box = Outbox(tmp_path)
    kb = b"x" * 1024
    fails = [_result("fail") for _ in range(3)]
    passes = [_result("pass") for _ in range(3)]
    for r in fails + passes:  # fails are older, still passes go first
        box.add(r, kb * 100, "jpg", upload=False)
    policy = RetentionConfig(max_images_mb=350 / 1024, pass_image_days=0, fail_image_days=0)
    assert box.enforce(policy)["images_by_size"] == 3
    remaining = box._db.execute(
        "SELECT id FROM results WHERE image_path IS NOT NULL").fetchall()
    assert {r[0] for r in remaining} == {r["id"] for r in fails}
    assert len(list((tmp_path / "images").glob("*/*.jpg"))) == 3
    box.close()


def test_retention_deletes_old_sent_rows_only(tmp_path):
    box = Outbox(tmp_path)
    sent_old, unsent_old = _result(), _result()
    box.add(sent_old, b"img", "jpg")
    box.add(unsent_old)
    _aged(box, sent_old["id"], 10, sent=True)
    _aged(box, unsent_old["id"], 100)
    assert box.enforce(RetentionConfig(sent_result_days=7))["rows"] == 1
    assert not box.has(sent_old["id"]) and box.has(unsent_old["id"])
    assert not list((tmp_path / "images").glob("*/*"))
    box.close()


@pytest.mark.parametrize("state", ["sent", "pending"])
def test_images_wait_for_their_result(tmp_path, state):
    box = Outbox(tmp_path)
    r = _result("fail")
    box.add(r, b"img", "jpg", upload=True)
    if state == "sent":
        box.claim(1)
        box.mark_sent([r["id"]])
    assert len(box.images_to_upload(10)) == (1 if state == "sent" else 0)
    box.close()


def test_meta_round_trip(tmp_path):
    box = Outbox(tmp_path)
    box.set_meta(last_sync_error="HTTP 503", model_version="v1")
    box.set_meta(last_sync_error=None)
    assert box.meta() == {"last_sync_error": None, "model_version": "v1"}
    box.close()
