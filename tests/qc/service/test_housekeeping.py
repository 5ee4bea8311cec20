"""The retention thread: when it is due, that it removes expired photos by itself, that it can be
turned off and stopped, and that runs from several workers neither overlap nor do harm."""

from __future__ import annotations

import gc
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from qc.db.models import Inspection
from qc.service import commands, create_app, housekeeping
from qc.service.database import get_database, get_session
from qc.service.housekeeping import retain, retention_lock, seconds_until_due
from qc.service.storage import get_storage
from tests.qc.service.conftest import png, upload

HOUR = 3600.0


def test_seconds_until_due():
    start = 1_000_000.0
    assert seconds_until_due(start, start, None, 300, HOUR) == 300  # first run after the delay
    assert seconds_until_due(start + 299, start, None, 300, HOUR) == 1
    assert seconds_until_due(start + 301, start, None, 300, HOUR) == 0
    assert seconds_until_due(start + 301, start, start + 300, 300, HOUR) == HOUR - 1  # period
    assert seconds_until_due(start + 300 + 2 * HOUR, start, start + 300, 300, HOUR) == 0
    # another worker's run, just before this one started, counts: no run after the delay
    assert seconds_until_due(start + 300, start, start - 60, 300, HOUR) == HOUR - 360
    assert seconds_until_due(start, start, start + 10 * HOUR, 300, HOUR) == 0  # clock set back


@pytest.fixture
def seeded(client, plant, app):
    """Two passed inspections with photos: one 40 days old (expired), one from now."""
    ids = []
    for _ in range(2):
        reply = client.post("/api/v1/inspections", headers=plant.auth("station"),
                            data={"product": "widget", "image": upload(png(20))})
        assert reply.status_code == 201 and reply.json["verdict"] == "pass", reply.json
        ids.append(reply.json["id"])
    old, recent = ids
    with app.app_context():
        db = get_session()
        db.execute(update(Inspection).where(Inspection.id == old).values(
            inspected_at=datetime.now(timezone.utc) - timedelta(days=40)))
        db.commit()
    return old, recent


def _files(app, inspection_id):
    with app.app_context():
        insp = get_session().get(Inspection, inspection_id)
        storage = get_storage()
        return [storage.resolve(p) for p in (insp.image_path, insp.heatmap_path) if p]


@pytest.fixture
def service(app):
    """service(**config) -> a non-TESTING app (its retention thread on) on the test app's
    database and data folder; its thread is stopped afterwards."""
    made = []

    def make(**config):
        made.append(create_app({**app.config, "TESTING": False, "AUTO_MIGRATE": False,
                                "INSTANCE_PATH": app.instance_path, **config}))
        return made[-1]

    yield make
    for other in made:
        housekeeping.stop(other)
        get_database_of(other).dispose()


def get_database_of(app):
    with app.app_context():
        return get_database()


def _retention_threads():
    return [t for t in threading.enumerate() if t.name == "qc-retention" and t.is_alive()]


def test_thread_removes_expired_photos_by_itself(service, seeded, app):
    old, recent = seeded
    old_files, recent_files = _files(app, old), _files(app, recent)
    assert len(old_files) == 2 and all(p.exists() for p in old_files + recent_files)
    running = service(RETENTION_EVERY_HOURS=0.5 / HOUR, RETENTION_FIRST_DELAY_S=0.1)
    worker = running.extensions[housekeeping.EXTENSION]
    assert worker.thread.is_alive()
    deadline = time.monotonic() + 15
    while any(p.exists() for p in old_files) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.exists() for p in old_files)
    time.sleep(1.2)  # a few more periods: they find nothing and harm nothing
    assert all(p.exists() for p in recent_files)
    with app.app_context():
        db = get_session()
        assert db.get(Inspection, old).image_path is None
        assert db.get(Inspection, recent).image_path is not None
    housekeeping.stop(running)
    assert not worker.thread.is_alive()


def test_zero_hours_or_testing_starts_no_thread(service, app):
    before = _retention_threads()
    off = service(RETENTION_EVERY_HOURS=0)
    assert housekeeping.EXTENSION not in off.extensions
    assert housekeeping.EXTENSION not in app.extensions  # the TESTING app
    assert _retention_threads() == before


def test_stop_ends_a_waiting_thread_at_once(service):
    running = service(RETENTION_FIRST_DELAY_S=HOUR)
    worker = running.extensions[housekeeping.EXTENSION]
    assert worker.thread.is_alive()
    started = time.monotonic()
    housekeeping.stop(running)
    assert not worker.thread.is_alive() and time.monotonic() - started < 2


def test_thread_ends_with_its_app(app):
    discarded = create_app({**app.config, "TESTING": False, "INSTANCE_PATH": app.instance_path,
                            "RETENTION_FIRST_DELAY_S": HOUR})
    worker = discarded.extensions[housekeeping.EXTENSION]
    get_database_of(discarded).dispose()
    del discarded
    gc.collect()
    worker.thread.join(5)
    assert not worker.thread.is_alive()


def test_a_second_run_is_harmless_and_a_recent_one_is_skipped(seeded, app):
    old, recent = seeded
    old_files = _files(app, old)
    now = time.time()
    first = retain(app, now)
    assert (first.result.inspections, first.result.files) == (1, 2)
    assert not any(p.exists() for p in old_files)
    again = retain(app, now + 1)  # forced, like `qc db retention` after the thread's run
    assert (again.result.inspections, again.result.files) == (0, 0)
    assert all(p.exists() for p in _files(app, recent))
    skipped = retain(app, now + 2, every_s=HOUR)  # another worker, the same period
    assert skipped.result is None and skipped.last_run == pytest.approx(now + 1, abs=0.01)
    assert retain(app, now + 2 + HOUR, every_s=HOUR).result is not None  # the next period


def test_runs_do_not_overlap(seeded, app):
    old, _recent = seeded
    old_files = _files(app, old)
    with app.app_context(), retention_lock(get_database()) as held:
        assert held
        now = time.time()
        busy = retain(app, now, every_s=HOUR)
        assert busy.result is None and busy.last_run == now  # tries again next period
        assert all(p.exists() for p in old_files)
        cli = CliRunner().invoke(commands.db, ["retention"], obj={"app": app})
        assert cli.exit_code == 0 and "skipped" in cli.output
    assert retain(app, time.time()).result.files == 2


def test_a_failing_run_is_logged_and_retried(app, monkeypatch, caplog):
    worker = housekeeping.RetentionWorker(app, every_s=HOUR, first_delay_s=0)

    def broken(*_args, **_kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(housekeeping, "apply_retention", broken)
    before = time.time()
    assert worker.run_once() >= before  # the next try is a period later
    assert "retention failed" in caplog.text and "disk on fire" in caplog.text
    monkeypatch.undo()
    assert worker.run_once() >= before


def test_negative_period_is_refused(app):
    with pytest.raises(ValueError, match="QC_RETENTION_EVERY_HOURS"):
        create_app({**app.config, "INSTANCE_PATH": app.instance_path,
                    "RETENTION_EVERY_HOURS": -1})


def test_cli_stamps_the_run(app):
    cli = CliRunner().invoke(commands.db, ["retention"], obj={"app": app})
    assert cli.exit_code == 0 and "retention: 0 files" in cli.output
    with app.app_context():
        assert housekeeping.read_stamp(get_storage()) == pytest.approx(time.time(), abs=60)
