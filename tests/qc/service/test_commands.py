"""The service's `qc` commands, run with click's CliRunner on the test app (and once through
the real `qc` entry point configured by environment variables)."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from qc.cli import cli
from qc.db.models import Inspection, InspectionCount, Product, User
from qc.service import commands
from qc.service.database import get_session
from tests.support.tiny_model import make_tiny_model


@pytest.fixture
def run(app):
    """run(group, *args) -> click Result, on the test app."""
    runner = CliRunner()

    def invoke(command, *args, ok=True):
        result = runner.invoke(command, list(args), obj={"app": app}, catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result

    return invoke


def test_users_commands(run, app, client):
    made = run(commands.users, "create", "--username", "ann", "--role", "manager")
    password = made.stdout.strip().removeprefix("password: ")
    assert len(password) >= 12
    run(commands.users, "create", "--username", "bob", "--role", "admin", "--password", "secret-12")
    dup = run(commands.users, "create", "--username", "bob", "--role", "admin", ok=False)
    assert "already exists" in dup.output
    run(commands.users, "set", "--username", "ann", "--role", "engineer", "--inactive")
    with app.app_context():
        ann = get_session().scalar(select(User).where(User.username == "ann"))
        assert ann.role == "engineer" and not ann.active
    key = run(commands.users, "key", "--username", "bob").stdout.strip()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json["role"] == (
        "admin")
    listing = run(commands.users, "list").stdout
    assert "ann\tengineer\tinactive" in listing and "bob\tadmin\tactive" in listing


def test_stations_commands_print_the_key(run, client):
    key = run(commands.stations, "create", "--name", "press-2", "--line", "L2").stdout.strip()
    assert key.startswith("qc_") and "\n" not in key
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json
    assert me["username"] == "station:press-2"
    new = run(commands.stations, "key", "--name", "press-2").stdout.strip()
    assert new != key
    assert "press-2\tL2\tlast seen never" in run(commands.stations, "list").stdout


def test_products_and_models_commands(run, app, tmp_path):
    run(commands.products, "create", "--name", "gear", "--sku", "G1", "--escape-cost", "90",
        "--manual-miss-rate", "0.3")
    run(commands.products, "set", "--name", "gear", "--qc-cost-per-unit", "0.02")
    with app.app_context():
        gear = get_session().scalar(select(Product).where(Product.name == "gear"))
        assert (gear.escape_cost, gear.manual_miss_rate, gear.qc_cost_per_unit) == (90, 0.3, 0.02)
        assert gear.internal_failure_cost == 2.0  # default
    bad = run(commands.products, "set", "--name", "gear", "--manual-miss-rate", "5", ok=False)
    assert "within 0..1" in bad.output
    v1 = make_tiny_model(tmp_path / "v1.onnx", product="gear", version="g-1")
    v2 = make_tiny_model(tmp_path / "v2.onnx", product="gear", version="g-2", threshold=0.4)
    assert "active" in run(commands.models, "upload", str(v1), "--product", "gear",
                           "--activate").stdout
    assert "not active" in run(commands.models, "upload", str(v2), "--product", "gear").stdout
    listing = run(commands.models, "list", "--product", "gear").stdout.splitlines()
    assert listing[0].startswith("* ") and listing[1].startswith("  ")
    second_id = listing[1].split()[0]
    run(commands.models, "activate", second_id)
    assert "gear\tG1\tg-2" in run(commands.products, "list").stdout
    assert "rolled back" in run(commands.models, "rollback", "--product", "gear").stdout
    assert "gear\tG1\tg-1" in run(commands.products, "list").stdout
    wrong = run(commands.models, "upload", str(v1), "--product", "nope", ok=False)
    assert "no product named 'nope'" in wrong.output


def test_db_commands(run, app, client, plant):
    results = [{"id": str(uuid.uuid4()), "product": "widget", "timestamp": "2026-03-02T10:00:00Z",
                "score": 0.9 if i < 3 else 0.1} for i in range(10)]
    client.post("/api/v1/results", headers=plant.auth("station"), json=results)
    assert "database at head" in run(commands.db, "upgrade").stdout
    assert "from 10 inspections" in run(commands.db, "rebuild-counts").stdout
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.sum(InspectionCount.count))) == 10
        assert db.scalar(select(func.count()).select_from(Inspection)) == 10
    assert "retention: 0 files" in run(commands.db, "retention").stdout


def test_serve_runs_the_app_under_gunicorn(run, app, monkeypatch):
    from gunicorn.app.base import BaseApplication

    calls = {}

    def fake_run(self):
        calls.update({k: self.cfg.settings[k].get() for k in ("bind", "worker_class")})
        calls["app"] = self.load()

    monkeypatch.setattr(BaseApplication, "run", fake_run)
    run(commands.serve, "--port", "8123", "--no-worker")  # the worker: jobs/test_worker_command
    assert calls == {"bind": ["127.0.0.1:8123"], "worker_class": "gthread", "app": app}


def test_serve_falls_back_to_waitress_without_gunicorn(app, monkeypatch):
    import sys

    import waitress

    from qc.service import server

    calls = {}
    monkeypatch.setitem(sys.modules, "gunicorn.app.base", None)  # as on Windows
    monkeypatch.setattr(waitress, "serve", lambda wsgi, **kw: calls.update(kw, app=wsgi))
    server.serve(lambda: app, "127.0.0.1", 8124, threads=4)
    assert calls == {"host": "127.0.0.1", "port": 8124, "threads": 4, "app": app}


def test_commands_log_migrations_only_when_verbose(db_url, tmp_path, monkeypatch, caplog):
    import logging

    monkeypatch.setenv("QC_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    monkeypatch.setenv("QC_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("QC_SECRET_KEY", "test")
    for flags, expect in (([], False), (["-v"], True)):
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            result = CliRunner().invoke(cli, [*flags, "db", "upgrade"])
        assert result.exit_code == 0, result.output
        migrated = [r for r in caplog.records if r.name.startswith("alembic")
                    and r.levelno == logging.INFO]
        assert bool(migrated) is expect
        monkeypatch.setenv("QC_DATABASE_URL", f"sqlite:///{tmp_path / 'other.sqlite3'}")


def test_qc_entry_point_uses_the_environment(db_url, tmp_path, monkeypatch, app):
    monkeypatch.setenv("QC_DATABASE_URL", db_url)
    monkeypatch.setenv("QC_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("QC_SECRET_KEY", "test")
    monkeypatch.setenv("QC_AUTO_MIGRATE", "0")
    monkeypatch.setenv("QC_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    result = CliRunner().invoke(cli, ["users", "create", "--username", "eve", "--role",
                                      "operator", "--password", "password-1"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert get_session().scalar(select(User).where(User.username == "eve")) is not None
