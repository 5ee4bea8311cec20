"""Alembic migrations build exactly the schema of the models, and undo it, on both backends."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from qc.db import Base, make_engine, migrate
from tests.support import postgres


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_migrations_match_models_and_downgrade(db_url):
    assert _diff(db_url) == []
    migrate.downgrade(db_url, "base")
    assert migrate.current_tables(db_url) == {"alembic_version"}
    migrate.upgrade(db_url)
    assert "inspection_counts" in migrate.current_tables(db_url)
    assert _diff(db_url) == []


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'db.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_missing_postgres_skips_but_fails_under_ci(monkeypatch):
    def missing():
        raise postgres.PostgresUnavailable("PostgreSQL binaries not found")

    monkeypatch.setattr(postgres, "find_bindir", missing)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="binaries not found"):
        postgres.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        postgres.require_postgres()


def _sql(url: str, *statements: tuple[str, dict]) -> list[tuple]:
    """Run statements in one transaction; the rows of the last one if it returns any."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for sql, params in statements:
                result = conn.execute(text(sql), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _seed_0001(url: str) -> None:
    """Two users, a product and three failed inspections: reviewed by the operator account,
    by the engineer account, and not at all."""
    at = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    users = [("INSERT INTO users (username, password_hash, role, active, created_at) "
              "VALUES (:n, 'x', :r, true, :at)", {"n": n, "r": r, "at": at})
             for n, r in (("olga", "operator"), ("erik", "engineer"))]
    product = ("INSERT INTO products (id, name, manual_inspection_cost, manual_miss_rate, "
               "escape_cost, internal_failure_cost, false_reject_cost, qc_cost_per_unit, "
               "created_at) VALUES (1, 'widget', 0, 0, 0, 0, 0, 0, :at)", {"at": at})
    inspections = [
        ("INSERT INTO inspections (id, product_id, inspected_at, received_at, source, score, "
         "verdict, review, review_label, review_note, reviewed_by, reviewed_at) VALUES "
         "(:id, 1, :at, :at, 'server', 0.9, 'fail', :review, :label, :note, :by, :rat)",
         {"id": ident, "at": at, "review": by and "disagree", "label": label,
          "note": by and f"note by {by}", "by": by, "rat": by and at})
        for ident, by, label in (("a", "olga", "good"), ("b", "erik", "stain"), ("c", None, None))
    ]
    _sql(url, *users, product, *inspections)


def test_0002_moves_operator_reviews_to_flags_and_back(db_url):
    migrate.downgrade(db_url, "0001")
    try:
        _seed_0001(db_url)
        migrate.upgrade(db_url)
        assert _sql(db_url, ("SELECT id, review, review_label, reviewed_by, flagged_by, flag_note "
                             "FROM inspections ORDER BY id", {})) == [
            ("a", None, None, None, "olga", "note by olga"),  # the operator's doubt: a flag
            ("b", "disagree", "stain", "erik", None, None),  # the engineer's review stays
            ("c", None, None, None, None, None),
        ]
        migrate.downgrade(db_url, "0001")
        assert _sql(db_url, ("SELECT id, review, review_label, reviewed_by, review_note "
                             "FROM inspections ORDER BY id", {})) == [
            ("a", "disagree", "good", "olga", "note by olga"),
            ("b", "disagree", "stain", "erik", "note by erik"),
            ("c", None, None, None, None),
        ]
    finally:
        _sql(db_url, *[(f"DELETE FROM {t}", {}) for t in ("inspections", "products", "users")])
        migrate.upgrade(db_url)
    assert _diff(db_url) == []


def test_0003_adds_source_name_and_drops_it_again(db_url):
    migrate.downgrade(db_url, "0002")
    try:
        _seed_0001(db_url)
        migrate.upgrade(db_url)
        assert _sql(db_url, ("SELECT id, source_name FROM inspections ORDER BY id", {})) == [
            ("a", None), ("b", None), ("c", None),  # recorded before: no name
        ]
        _sql(db_url, ("UPDATE inspections SET source_name = :n WHERE id = 'a'", {"n": "cam.png"}))
        migrate.downgrade(db_url, "0002")
        columns = _columns(db_url, "inspections")
        assert "source_name" not in columns and "flags" in columns
        assert _sql(db_url, ("SELECT id, verdict FROM inspections ORDER BY id", {})) == [
            ("a", "fail"), ("b", "fail"), ("c", "fail"),  # the rows survive the downgrade
        ]
    finally:
        _sql(db_url, *[(f"DELETE FROM {t}", {}) for t in ("inspections", "products", "users")])
        migrate.upgrade(db_url)
    assert _diff(db_url) == []


def test_0004_links_existing_stations_to_every_product_and_back(db_url):
    migrate.downgrade(db_url, "0003")
    at = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    tables = ("station_products", "inspections", "stations", "products", "users")
    try:
        _seed_0001(db_url)
        _sql(db_url, ("INSERT INTO stations (id, name, api_key_hash, active, created_at) "
                      "VALUES (7, 's7', 'h', true, :at)", {"at": at}))
        migrate.upgrade(db_url)
        assert _sql(db_url, ("SELECT station_id, product_id FROM station_products", {})) == [
            (7, 1)]  # an upgrade stops no station
        assert _sql(db_url, ("SELECT DISTINCT session_epoch FROM users", {})) == [(0,)]
        migrate.downgrade(db_url, "0003")
        assert "station_products" not in migrate.current_tables(db_url)
        assert "session_epoch" not in _columns(db_url, "users")
    finally:
        _sql(db_url, *[(f"DELETE FROM {t}", {}) for t in tables
                       if t in migrate.current_tables(db_url)])
        migrate.upgrade(db_url)
    assert _diff(db_url) == []
