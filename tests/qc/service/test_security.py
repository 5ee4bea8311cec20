"""Regression tests of the security review (issue 14): one or more per finding, each failing on
the code before the fix."""

from __future__ import annotations

import csv
import io
import logging
import os
import stat
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote, unquote

import cv2
import numpy as np
import pytest

from qc.service import auth, create_app, ingest, registry
from qc.service.database import get_session
from qc.service.storage import get_storage
from tests.qc.service.conftest import png, upload
from tests.qc.service.test_ingest import _results
from tests.support.tiny_model import make_tiny_model

FORMULA = ";=cmd|' /C calc'!A0"


def _files(app) -> list[Path]:
    root = Path(app.config["DATA_DIR"])
    return sorted(p for p in root.rglob("*") if p.is_file() and "models" not in p.parts)


def _inspect(client, plant, role="engineer", **fields):
    data = {"image": upload(png(200)), "product": "widget", **fields}
    return client.post("/api/v1/inspections", headers=plant.auth(role), data=data)


def test_row1_a_known_id_answers_only_what_the_caller_may_see(client, plant):
    other = _inspect(client, plant, "engineer")
    assert other.status_code == 201
    again = _inspect(client, plant, "operator", id=other.json["id"])
    assert again.status_code == 404 and other.json["id"] in again.json["error"]["message"]
    own = _inspect(client, plant, "operator")
    assert _inspect(client, plant, "operator", id=own.json["id"]).status_code == 200


def test_row2_a_server_photo_is_never_replaced_and_edge_photos_go_once(client, plant, app):
    served = _inspect(client, plant, "station")
    before = {p: p.read_bytes() for p in _files(app)}
    url = f"/api/v1/inspections/{served.json['id']}/image"
    reply = client.put(url, headers=plant.auth("station"),
                       data={"image": upload(png(10)), "heatmap": upload(png(20), "h.png")})
    assert reply.status_code == 409
    assert {p: p.read_bytes() for p in _files(app)} == before
    result = _results(1)[0]
    client.post("/api/v1/results", headers=plant.auth("station"), json=[result])
    edge = f"/api/v1/inspections/{result['id']}/image"
    assert client.put(edge, headers=plant.auth("station"),
                      data={"image": upload(png(30))}).status_code == 200
    assert client.put(edge, headers=plant.auth("station"),
                      data={"image": upload(png(40))}).status_code == 409
    assert len(_files(app)) == len(before) + 1


def test_row3_unknown_users_cost_the_same_hash(app, monkeypatch):
    app.config["PASSWORD_HASH_METHOD"] = "pbkdf2:sha256:2000"
    checked = []
    monkeypatch.setattr(auth, "check_password_hash", lambda h, p: checked.append(h) or False)
    with app.test_request_context():
        assert auth.check_login("nobody", "secret-password") is None
    assert checked and checked[0].startswith("pbkdf2:sha256:2000$")


def test_row3_failed_logins_are_throttled_per_user_and_address(app, client, plant, login,
                                                               caplog):
    app.config["LOGIN_LIMIT_USER"] = "3 per minute"
    app.config["LOGIN_LIMIT_ADDRESS"] = "5 per minute"
    from tests.qc.service.conftest import csrf_token

    token = csrf_token(client.get("/login").get_data(as_text=True))

    def attempt(username, password):
        return client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token}).status_code

    with caplog.at_level(logging.WARNING, logger="qc.service.auth"):
        assert [attempt("operator", "wrong-one") for _ in range(3)] == [401] * 3
    assert "failed log-in as 'operator'" in caplog.text
    assert attempt("operator", "password-operator") == 429  # locked out, even when right
    assert attempt("ghost", "wrong-one") == 401
    assert attempt("ghost2", "wrong-one") == 401
    assert attempt("manager", "password-manager") == 429  # this address spent its failures


def _png16(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((height, width, 3), 40000, np.uint16))
    assert ok
    return buf.tobytes()


def test_row4_decoded_size_is_bounded_and_16_bit_decodes_as_8(client, plant, app):
    app.config["MAX_DECODED_BYTES"] = 20 * 2**20
    fits = client.post("/api/v1/inspections", headers=plant.auth("station"),
                       data={"image": upload(_png16(2000, 2000)), "product": "widget"})
    assert fits.status_code == 201  # 24 MB at 16 bit, 12 MB at 8: decoded at 8 bit
    too_big = client.post("/api/v1/inspections", headers=plant.auth("station"),
                          data={"image": upload(_png16(3000, 3000)), "product": "widget"})
    assert too_big.status_code == 400 and "QC_MAX_DECODED_MB" in too_big.json["error"]["message"]


def test_row4_decodes_wait_for_a_free_slot(app):
    from qc.service import photos

    app.config["MAX_DECODES"] = 1
    photos.init_app(app)
    with app.app_context(), photos.decode_slot():
        assert not app.extensions[photos.EXTENSION].acquire(timeout=0.05)


def test_row6_any_model_label_travels_in_the_header(client, plant, app, tmp_path):
    label = "деталь-2026\r\nX-Evil: 1"
    model = make_tiny_model(tmp_path / "d.onnx", product="деталь", version=label)
    with app.app_context():
        db = get_session()
        product = registry.create_product(db, "деталь")
        registry.upload_model(db, get_storage(), model, product, "admin", activate=True)
        _station, key = registry.create_station(db, "s-ru", None, ["деталь"])
        db.commit()
    reply = client.get(f"/api/v1/products/{quote('деталь')}/model",
                       headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200 and "X-Evil" not in reply.headers
    assert unquote(reply.headers["X-Model-Version"]) == label
    assert reply.headers["X-Model-Version"].isascii()


def test_row7_logout_and_password_change_end_sessions(app, client, plant, login):
    token = login("manager", "password-manager")
    cookie = client.get_cookie("session").value
    assert client.get("/api/v1/me").status_code == 200
    client.post("/logout", data={"csrf_token": token})
    client.set_cookie("session", cookie)
    assert client.get("/api/v1/me").status_code == 401
    login("manager", "password-manager")
    assert client.get("/api/v1/me").status_code == 200
    changed = app.test_client().patch("/api/v1/users/manager", headers=plant.auth("admin"),
                                      json={"password": "a-new-password"})
    assert changed.status_code == 200
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("body", [{"active": "false"}, {"active": 0}, {"password": 12345678},
                                  {"password": ["a-long-password"]}, {"role": ["admin"]}])
def test_row8_user_fields_take_json_types_only(client, plant, body):
    reply = client.patch("/api/v1/users/manager", headers=plant.auth("admin"), json=body)
    assert reply.status_code == 400 and list(body)[0] in reply.json["error"]["message"]
    user = client.get("/api/v1/users", headers=plant.auth("admin")).json["items"]
    assert next(u for u in user if u["username"] == "manager")["active"] is True
    created = client.post("/api/v1/users", headers=plant.auth("admin"),
                          json={"username": "x", "role": "manager", "password": 12345678})
    assert created.status_code == 400


def test_row9_every_csv_cell_is_neutralised(client, plant):
    result = {**_results(1)[0], "lot": FORMULA, "flags": ["=1+1"]}
    client.post("/api/v1/results", headers=plant.auth("station"), json=[result])
    client.post(f"/api/v1/inspections/{result['id']}/review", headers=plant.auth("engineer"),
                json={"review": "agree", "note": "x;@SUM(A1)"})
    client.put(f"/api/v1/inspections/{result['id']}/image", headers=plant.auth("station"),
               data={"image": upload(png(200))})
    text = client.get("/api/v1/inspections.csv", headers=plant.auth("manager")).get_data(True)
    archive = client.get("/api/v1/dataset.zip?product=widget", headers=plant.auth("engineer"))
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        labels = z.read(next(n for n in z.namelist() if n.endswith("labels.csv"))).decode()
    for document in (text, labels):
        for separator in (",", ";"):
            for row in csv.reader(io.StringIO(document), delimiter=separator):
                assert not any(cell.strip()[:1] in ("=", "+", "-", "@") for cell in row), row


def test_row10_out_of_range_times_and_offsets_are_400(client, plant):
    far = "0001-01-01T00:00:00+14:00"
    batch = [{**_results(1)[0], "timestamp": far}, _results(1)[0]]
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    assert reply.status_code == 200 and reply.json["accepted"] == 1
    assert "timestamp" in reply.json["rejected"][0]["error"]
    manager = plant.auth("manager")
    for url in (f"/api/v1/stats?from={quote(far)}", f"/api/v1/inspections?from={quote(far)}",
                f"/api/v1/inspections.csv?to={quote(far)}", "/api/v1/inspections?offset=1e20",
                "/api/v1/inspections?offset=9223372036854775808"):
        reply = client.get(url, headers=manager)
        assert reply.status_code == 400 and reply.json["error"]["message"], url


def test_row10_dashboard_far_dates_are_a_message(client, plant, login):
    login("manager", "password-manager")
    page = client.get("/dashboard?to=0001-01-01")
    assert page.status_code == 200 and "from 1970 on" in page.get_data(True)


def test_row10_deep_json_is_400(client, plant):
    deep = "[" * 100_000 + "]" * 100_000
    reply = client.post("/api/v1/results", headers={**plant.auth("station"),
                        "Content-Type": "application/json"}, data=deep)
    assert reply.status_code == 400 and "nested" in reply.json["error"]["message"]


def test_row10_thin_images_inspect_and_failures_leave_no_files(client, plant, app, monkeypatch):
    ok, buf = cv2.imencode(".png", np.full((4, 20000, 3), 200, np.uint8))
    thin = client.post("/api/v1/inspections", headers=plant.auth("station"),
                       data={"image": upload(buf.tobytes()), "product": "widget"})
    assert thin.status_code == 201
    before = _files(app)

    def broken(db, rows):
        raise RuntimeError("database went away")

    monkeypatch.setattr("qc.service.api.record", broken)
    assert _inspect(client, plant, "station").status_code == 500
    assert _files(app) == before


def test_row11_junk_bearer_does_not_skip_csrf(client, plant, login):
    login("engineer", "password-engineer")
    reply = client.post("/api/v1/results", json=_results(1),
                        headers={"Authorization": "Bearer junk"})
    assert reply.status_code == 400 and "CSRF" in reply.get_data(True)


def test_row12_headers(client, plant):
    made = _inspect(client, plant, "station")
    photo = client.get(made.json["image_url"], headers=plant.auth("station"))
    assert photo.status_code == 200
    assert "no-store" in photo.headers["Cache-Control"]
    assert "public" not in photo.headers["Cache-Control"]
    page = client.get("/login")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_row13_dataset_reviewed_false_means_all(client, plant):
    reviewed, unreviewed = _results(2)
    client.post("/api/v1/results", headers=plant.auth("station"), json=[reviewed, unreviewed])
    for r in (reviewed, unreviewed):
        client.put(f"/api/v1/inspections/{r['id']}/image", headers=plant.auth("station"),
                   data={"image": upload(png(200))})
    client.post(f"/api/v1/inspections/{reviewed['id']}/review", headers=plant.auth("engineer"),
                json={"review": "agree"})

    def ids(query):
        reply = client.get(f"/api/v1/dataset.zip?product=widget{query}",
                           headers=plant.auth("engineer"))
        with zipfile.ZipFile(io.BytesIO(reply.data)) as z:
            return {Path(n).stem for n in z.namelist() if not n.endswith(".csv")}

    assert ids("") == {reviewed["id"]}
    assert ids("&reviewed=false") == {reviewed["id"], unreviewed["id"]}


def test_sqlite_file_is_private(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "k" * 32})
    path = tmp_path / "i" / "qc.sqlite3"
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    from qc.service.database import get_database

    with app.app_context():
        get_database().dispose()


def test_station_keys_download_only_their_products_models(client, plant, app, tmp_path):
    model = make_tiny_model(tmp_path / "gear.onnx", product="gear")
    with app.app_context():
        db = get_session()
        product = registry.create_product(db, "gear")
        registry.upload_model(db, get_storage(), model, product, "admin", activate=True)
        db.commit()
    station = plant.auth("station")
    assert client.get("/api/v1/products/widget/model", headers=station).status_code == 200
    refused = client.get("/api/v1/products/gear/model", headers=station)
    assert refused.status_code == 403 and "qc stations set" in refused.json["error"]["message"]
    linked = client.patch("/api/v1/stations/s1", headers=plant.auth("admin"),
                          json={"products": ["widget", "gear"]})
    assert linked.status_code == 200 and linked.json["products"] == ["gear", "widget"]
    assert client.get("/api/v1/products/gear/model", headers=station).status_code == 200
    assert client.patch("/api/v1/stations/s1", headers=plant.auth("engineer"),
                        json={"products": []}).status_code == 403
    admin = plant.auth("admin")
    for body, status in (({"products": ["ghost"]}, 404), ({"products": "gear"}, 400),
                         ({"products": [7]}, 400), ({"api_key": "x"}, 400)):
        assert client.patch("/api/v1/stations/s1", headers=admin, json=body).status_code == status
    assert client.get("/api/v1/products/gear/model", headers=station).status_code == 200


@pytest.mark.parametrize("change", [{"lot": {"a": 1}}, {"score": True}, {"score": "0.5"},
                                    {"serial": 5}, {"verdict": ["fail"]}])
def test_result_fields_take_their_json_type_only(client, plant, change):
    item = {**_results(1)[0], **change}
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=[item])
    assert reply.json["accepted"] == 0
    assert list(change)[0] in reply.json["rejected"][0]["error"]


def test_rejected_ids_are_strings(client, plant):
    reply = client.post("/api/v1/results", headers=plant.auth("station"),
                        json=[[None, None], {"id": 7}, {"id": str(uuid.uuid4())}])
    assert [r["id"] for r in reply.json["rejected"]][:2] == ["", ""]
    assert all(isinstance(r["id"], str) for r in reply.json["rejected"])


def test_parse_time_refuses_overflowing_offsets():
    with pytest.raises(ingest.ResultError, match="between 1970 and 9000"):
        ingest.parse_time("0001-01-01T00:00:00+14:00")


def test_nul_characters_are_refused_everywhere(client, plant):
    """PostgreSQL cannot store NUL in text: found by the fuzz run as 500s there."""
    manager, station = plant.auth("manager"), plant.auth("station")
    assert client.get("/api/v1/inspections?lot=a%00b", headers=manager).status_code == 400
    form = client.post("/api/v1/inspections", headers=station,
                       data={"image": upload(png(200)), "product": "widget", "serial": "x\x00"})
    assert form.status_code == 400 and "NUL" in form.json["error"]["message"]
    body = client.post("/api/v1/results", headers=station,
                       json=[{**_results(1)[0], "lot": "L\x001"}])
    assert body.status_code == 400
    login = client.post("/login", data={"username": "a\x00", "password": "x"})
    assert login.status_code == 400
