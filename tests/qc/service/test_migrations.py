"""Alembic migrations build exactly the schema of the models, and undo it, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
