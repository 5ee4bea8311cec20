"""The demo plant: `qc demo` prepares it once, and its history tells the story the dashboard
should show (a drift the p-chart catches, a lower defect rate after the fix)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from qc.db.models import Inspection, Station, User
from qc.service import demo, stats
from qc.service.commands import demo as demo_command
from qc.service.database import get_session
from qc.service.storage import get_storage
from tests.support.tiny_model import make_tiny_model

NOW = datetime(2026, 3, 18, 20, 30, tzinfo=timezone.utc)  # a Wednesday evening


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """SQLite only: the demo is SQLite by definition."""
    from qc.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'qc.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def flange_model(tmp_path):
    """A tiny model package for the demo product (no training)."""
    return make_tiny_model(tmp_path / "flange.onnx", product=demo.PRODUCT,
                           defect_types=tuple(demo.DEFECT_MIX))


def test_plan_rates():
    plan = demo.Plan()
    assert demo.defect_rate(plan, 0, "L1-B") == plan.base_rate
    assert demo.defect_rate(plan, plan.drift_start - 1, "L1-B") == plan.base_rate
    assert demo.defect_rate(plan, plan.fix_day - 1, "L1-B") == pytest.approx(plan.drift_peak)
    assert demo.defect_rate(plan, plan.fix_day - 1, "L1-A") == plan.base_rate
    assert demo.defect_rate(plan, plan.fix_day, "L1-B") == plan.improved_rate


def _daily(db, app, station=None):
    args = {"from": (NOW - timedelta(days=30)).isoformat(), "to": NOW.isoformat(), "bucket": "day"}
    if station:
        args["station"] = station
    req = stats.parse_request(db, args, app.config)
    return stats.compute(db, req, app.config["REVIEW_PRIOR_WEIGHT"])


def test_history_has_a_drift_the_p_chart_catches_and_a_fix(app, flange_model):
    plan = demo.Plan()
    first = NOW.date() - timedelta(days=plan.days - 1)
    drift = {(first + timedelta(days=d)).isoformat() for d in range(plan.drift_start, plan.fix_day)}
    with app.app_context():
        db = get_session()
        version, stations = demo.create_catalog(db, get_storage(), flange_model)
        rows = demo.seed_history(db, version, stations, ZoneInfo("UTC"), plan, now=NOW)
        db.commit()
        assert 15_000 < rows < 22_000
        for station, least in ((None, 2), ("L1-B", 3)):
            points = _daily(db, app, station)["p_chart"]["points"]
            high = {p["bucket"][:10] for p in points if p["out_of_control"] and p["p"] > p["ucl"]}
            assert len(high & drift) >= least and high <= drift, (station, high)
        overall = _daily(db, app)
        before = [p["p"] for p in overall["p_chart"]["points"]
                  if p["bucket"][:10] < min(drift)]
        after = [p["p"] for p in overall["p_chart"]["points"] if p["bucket"][:10] > max(drift)]
        assert sum(after) / len(after) < 0.75 * sum(before) / len(before)
        assert overall["pareto"][0]["defect_type"] == "scratch"  # the worn tool
        assert overall["savings"]["total"] > 0


def test_demo_command_prepares_once_and_prints_the_log_ins(tmp_path, flange_model):
    instance = tmp_path / "plant"
    runner = CliRunner()
    args = ["--instance", str(instance), "--model", str(flange_model), "--no-serve"]
    first = runner.invoke(demo_command, args)
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8000/" in first.output
    for username, _role, password in demo.USERS:
        assert username in first.output and password in first.output
    assert (instance / "secret_key").exists()  # generated, not a default
    app = demo.demo_app(instance)
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.count()).select_from(User)) == len(demo.USERS)
        assert db.scalar(select(func.count()).select_from(Station)) == len(demo.STATIONS)
        live = db.scalars(select(Inspection.verdict).where(Inspection.image_path.is_not(None)))
        live = list(live)
        flagged = db.scalar(select(func.count()).where(Inspection.flagged_by == "operator"))
        assert not db.scalar(select(func.count()).where(Inspection.reviewed_by == "operator"))
        assert len(live) == len(demo.sample_photos()) and flagged == ("fail" in live)
    again = runner.invoke(demo_command, args)
    assert again.exit_code == 0 and "reusing the existing demo data" in again.output


def test_model_is_trained_once_and_then_reused(tmp_path, flange_model):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / f"{demo.PRODUCT}.onnx"
    cached.write_bytes(flange_model.read_bytes())
    assert demo.ensure_model(cache) == cached


def test_demo_default_instance_is_relative_to_the_working_folder(tmp_path, flange_model,
                                                                  monkeypatch):
    """`make run` runs `qc demo` with no --instance: ./instance/demo must work."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QC_INSTANCE_PATH", raising=False)
    result = CliRunner().invoke(demo_command, ["--model", str(flange_model), "--no-serve"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "demo" / "qc.sqlite3").exists()
