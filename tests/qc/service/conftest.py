"""Service fixtures: every test runs on SQLite and on a throwaway PostgreSQL server.

One PostgreSQL server per session, one migrated database per backend and test module, tables
emptied after each test. `plant` adds a product with an active tiny model, a station and one
user per role, each with an API key.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from qc.db import migrate
from qc.service import create_app, registry
from qc.service.database import get_database, get_session
from qc.service.storage import get_storage
from tests.support.postgres import require_postgres
from tests.support.tiny_model import make_tiny_model

ROLES = ("operator", "manager", "engineer", "admin")
TABLES = ("inspection_counts", "station_products", "inspections", "training_jobs",
          "taught_photos", "model_activations", "model_versions", "products", "stations",
          "users")


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the whole session (skipped, or failed under CI, if missing)."""
    server = require_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    """A migrated database per backend and module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'qc.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    migrate.upgrade(url)
    return url


@pytest.fixture
def app(db_url, tmp_path):
    """An app on the module's database with its own data folder; tables emptied afterwards."""
    app = create_app({
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": db_url,
        "DATA_DIR": str(tmp_path / "data"),
        "AUTO_MIGRATE": False,
        "SECRET_KEY": uuid.uuid4().hex,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",  # fast in tests; scrypt in production
    })
    yield app
    with app.app_context():
        _empty_tables(get_session())
        get_database().dispose()


def _empty_tables(db) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    else:
        db.execute(text("UPDATE products SET active_model_id = NULL"))
        for table in TABLES:
            db.execute(text(f"DELETE FROM {table}"))
    db.commit()


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()


@dataclass
class Plant:
    """What the plant fixture created: API keys by role ('station' included)."""

    keys: dict[str, str] = field(default_factory=dict)
    product: str = "widget"
    station: str = "s1"
    model_path: object = None

    def auth(self, role: str | None) -> dict[str, str]:
        """Authorization header of a role (none for None)."""
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}


@pytest.fixture
def plant(app, tmp_path) -> Plant:
    """Product 'widget' with an active tiny model, station 's1', a user per role with a key."""
    out = Plant(model_path=make_tiny_model(tmp_path / "tiny.onnx"))
    with app.app_context():
        db = get_session()
        for role in ROLES:
            user, _ = registry.create_user(db, role, role, "password-" + role)
            out.keys[role] = registry.issue_key(user)
        product = registry.create_product(db, "widget", "W-1")
        _station, out.keys["station"] = registry.create_station(db, "s1", "line 1", ["widget"])
        registry.upload_model(db, get_storage(), out.model_path, product, "admin", activate=True)
        db.commit()
    return out


def png(value: int, size: tuple[int, int] = (40, 50)) -> bytes:
    """A flat grey PNG: bright (>= 128) fails with the tiny model, dark passes."""
    ok, buf = cv2.imencode(".png", np.full((*size, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def upload(data: bytes, name: str = "photo.png") -> tuple[io.BytesIO, str]:
    """A multipart file value for the test client."""
    return io.BytesIO(data), name


def csrf_token(html: str) -> str:
    """The CSRF token in a rendered page."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


@pytest.fixture
def login(client):
    """login(username, password) through the real form; returns the CSRF token of the session."""

    def do_login(username: str, password: str) -> str:
        token = csrf_token(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"username": username, "password": password,
                                               "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        return csrf_token(client.get("/").get_data(as_text=True))

    return do_login
