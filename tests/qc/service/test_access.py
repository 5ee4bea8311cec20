"""Every /api/v1 endpoint is refused without credentials (401) and to roles that lack it (403);
browser sessions log in, expire when idle and need CSRF tokens; secrets have no default."""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner

from qc.service import create_app
from qc.service.auth import STATION

# endpoint -> roles allowed besides admin (the contract; the views' decorators must match it)
EXPECTED = {
    "api.me": {STATION, "operator", "manager", "engineer"},
    "api.create_inspection": {STATION, "operator", "engineer"},
    "api.post_results": {STATION, "engineer"},
    "api.put_image": {STATION, "engineer"},
    "api.list_inspections": {STATION, "operator", "manager", "engineer"},
    "api.get_inspection": {STATION, "operator", "manager", "engineer"},
    "api.inspection_file": {STATION, "operator", "manager", "engineer"},
    "api.export_csv": {"manager", "engineer"},
    "api.review": {"engineer"},
    "api.get_stats": {"manager", "engineer"},
    "api.dataset": {"engineer"},
    "api.quality_report": {"manager", "engineer"},
    "api.lot_certificate": {"manager", "engineer"},
    "api.list_products": {STATION, "operator", "manager", "engineer"},
    "api.create_product": set(),
    "api.update_product": set(),
    "api.download_model": {STATION, "engineer"},
    "api.rollback": {"engineer"},
    "api.list_models": {"manager", "engineer"},
    "api.upload_model": {"engineer"},
    "api.activate": {"engineer"},
    "api.list_stations": {"manager", "engineer"},
    "api.create_station": set(),
    "api.update_station": set(),
    "api.rotate_station_key": set(),
    "api.list_users": set(),
    "api.create_user": set(),
    "api.update_user": set(),
    "api.issue_user_key": set(),
    "api.start_training_job": {"engineer"},
    "api.list_training_jobs": {"manager", "engineer"},
    "api.get_training_job": {"manager", "engineer"},
    "api.cancel_training_job": {"engineer"},
    "api.retry_training_job": {"engineer"},
    "api.training_job_report": {"manager", "engineer"},
    "api.compare_model": {"engineer"},
    "api.teach_photo": {"operator", "engineer"},
    "api.taught_photos": {"operator", "engineer"},
}
PUBLIC = {"api.health", "api.openapi_spec"}
PRINCIPALS = (STATION, "operator", "manager", "engineer", "admin")
SAMPLE = {"inspection_id": str(uuid.uuid4()), "kind": "image", "name": "widget", "model_id": "1",
          "username": "operator", "lot": "L1", "job_id": "1"}


def _api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: SAMPLE[m.group(1)], rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule.endpoint, method, url


def test_every_endpoint_declares_the_expected_roles(app):
    endpoints = {endpoint for endpoint, _, _ in _api_routes(app)}
    assert endpoints == set(EXPECTED) | PUBLIC
    for endpoint, roles in EXPECTED.items():
        assert set(app.view_functions[endpoint].roles) - {"admin"} == roles, endpoint


def test_every_endpoint_refuses_missing_keys_and_other_roles(client, plant, app):
    checked = 0
    for endpoint, method, url in _api_routes(app):
        if endpoint in PUBLIC:
            continue
        for headers, status in (({}, 401), ({"Authorization": "Bearer qc_wrong"}, 401)):
            reply = client.open(url, method=method, headers=headers, buffered=True)
            assert reply.status_code == status, (endpoint, method, headers)
            assert reply.json["error"]["message"]
        for role in PRINCIPALS:
            reply = client.open(url, method=method, headers=plant.auth(role), buffered=True)
            allowed = role == "admin" or role in EXPECTED[endpoint]
            if allowed:
                assert reply.status_code not in (401, 403), (endpoint, method, role)
            else:
                assert reply.status_code == 403, (endpoint, method, role, reply.status_code)
                assert role in reply.json["error"]["message"]
            checked += 1
    assert checked > 100


def test_public_endpoints(client):
    assert client.get("/api/v1/health").json == {"status": "ok"}
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/inspections" in spec["paths"] and "/results" in spec["paths"]
    assert "requestBody" in spec["paths"]["/results"]["post"]
    assert "/stats" in spec["paths"]


def test_deactivated_user_key_stops_working(client, plant):
    admin = plant.auth("admin")
    assert client.get("/api/v1/me", headers=plant.auth("manager")).status_code == 200
    client.patch("/api/v1/users/manager", headers=admin, json={"active": False})
    assert client.get("/api/v1/me", headers=plant.auth("manager")).status_code == 401


def test_bearer_requests_set_no_cookie(client, plant):
    reply = client.get("/api/v1/me", headers=plant.auth("station"))
    assert reply.json["role"] == STATION and "Set-Cookie" not in reply.headers


def test_login_session_and_csrf(client, plant, login):
    bad = client.post("/login", data={"username": "manager", "password": "wrong"})
    assert bad.status_code in (400, 401)
    token = login("engineer", "password-engineer")
    home = client.get("/")
    assert home.status_code == 200 and "engineer" in home.get_data(as_text=True)
    me = client.get("/api/v1/me")
    assert me.json == {"username": "engineer", "role": "engineer", "via_key": False}
    body = {"review": "agree"}
    url = f"/api/v1/inspections/{uuid.uuid4()}/review"
    refused = client.post(url, json=body)
    assert refused.status_code == 400 and "CSRF" in refused.json["error"]["message"]
    accepted = client.post(url, json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 404  # past CSRF and roles: the inspection does not exist
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/api/v1/me").status_code == 401


def test_wrong_password_is_refused(client, plant):
    from tests.qc.service.conftest import csrf_token

    token = csrf_token(client.get("/login").get_data(as_text=True))
    reply = client.post("/login", data={"username": "manager", "password": "nope",
                                        "csrf_token": token})
    assert reply.status_code == 401 and "wrong password" in reply.get_data(as_text=True)


def test_browser_without_session_is_sent_to_login(client):
    reply = client.get("/", headers={"Accept": "text/html"})
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]


def test_idle_session_expires(client, plant, login, app, monkeypatch):
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=30)
    login("manager", "password-manager")
    assert client.get("/api/v1/me").status_code == 200
    now = int(time.time())
    # 29 idle minutes later the session is still valid, and the request renews it...
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now + 29 * 60)
    assert client.get("/api/v1/me").status_code == 200
    # ...so it is still valid 58 minutes after the login, and ends after 31 idle minutes
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now + 58 * 60)
    assert client.get("/api/v1/me").status_code == 200
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now + 89 * 60)
    assert client.get("/api/v1/me").status_code == 401


def test_open_redirect_is_refused(client, plant):
    from tests.qc.service.conftest import csrf_token

    token = csrf_token(client.get("/login").get_data(as_text=True))
    reply = client.post("/login?next=//evil.example/x", data={
        "username": "manager", "password": "password-manager", "csrf_token": token})
    assert reply.headers["Location"] == "/"


def test_secret_key_is_generated_once_with_mode_0600(tmp_path, db_url, monkeypatch):
    monkeypatch.delenv("QC_SECRET_KEY", raising=False)
    config = {"INSTANCE_PATH": str(tmp_path / "inst"), "DATABASE_URL": db_url,
              "AUTO_MIGRATE": False, "DATA_DIR": str(tmp_path)}
    first = create_app(dict(config))
    second = create_app(dict(config))
    path = tmp_path / "inst" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32
    for app in (first, second):
        app.extensions["qc.db"].dispose()


def test_secret_key_from_environment(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("QC_SECRET_KEY", "from-the-environment")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": db_url,
                      "AUTO_MIGRATE": False})
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()
    app.extensions["qc.db"].dispose()


@pytest.mark.parametrize("setting", [{"TIMEZONE": "Mars/Base"}, {"SHIFTS": "6,25"}])
def test_bad_settings_fail_at_start(tmp_path, db_url, setting):
    with pytest.raises(ValueError):
        create_app({"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": db_url, "SECRET_KEY": "x",
                    "AUTO_MIGRATE": False, **setting})
