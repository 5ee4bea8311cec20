"""Listing, paging, scopes, CSV export, reviews, dataset export and image retention."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from qc.service.database import get_session
from qc.service.storage import apply_retention, get_storage
from tests.qc.service.conftest import png, upload


def _inspect(client, plant, value, role="station", **form):
    reply = client.post("/api/v1/inspections", headers=plant.auth(role),
                        data={"product": "widget", "image": upload(png(value)), **form})
    assert reply.status_code == 201, reply.json
    return reply.json


def _result(timestamp, score, **extra):
    return {"id": str(uuid.uuid4()), "product": "widget", "timestamp": timestamp, "score": score,
            **extra}


def test_list_filters_and_paging(client, plant):
    batch = [_result(f"2026-03-02T10:{i:02d}:00Z", 0.9 if i % 2 else 0.1, lot=f"L{i % 3}",
                     defect_type="scratch") for i in range(30)]
    client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    manager = plant.auth("manager")
    first = client.get("/api/v1/inspections?limit=20", headers=manager).json
    assert len(first["items"]) == 20 and first["next_offset"] == 20
    assert first["items"][0]["inspected_at"] == "2026-03-02T10:29:00+00:00"  # newest first
    rest = client.get("/api/v1/inspections?limit=20&offset=20", headers=manager).json
    assert len(rest["items"]) == 10 and rest["next_offset"] is None
    fails = client.get("/api/v1/inspections?verdict=fail&lot=L1&limit=100", headers=manager).json
    assert fails["items"] and all(i["verdict"] == "fail" and i["lot"] == "L1"
                                  for i in fails["items"])
    window = client.get("/api/v1/inspections", headers=manager, query_string={
        "from": "2026-03-02T10:10:00Z", "to": "2026-03-02T10:20:00Z"}).json
    assert len(window["items"]) == 10
    assert client.get("/api/v1/inspections?limit=0", headers=manager).status_code == 400
    assert client.get("/api/v1/inspections?verdict=meh", headers=manager).status_code == 400


def test_operators_see_their_own_and_stations_theirs(client, plant):
    own = _inspect(client, plant, 200, role="operator")
    _inspect(client, plant, 200, role="station")
    client.post("/api/v1/stations", headers=plant.auth("admin"), json={"name": "s2"})
    client.post("/api/v1/results", headers=plant.auth("engineer"),
                json=[_result("2026-03-02T10:00:00Z", 0.1, station="s2")])
    mine = client.get("/api/v1/inspections", headers=plant.auth("operator")).json["items"]
    assert [i["id"] for i in mine] == [own["id"]]
    station = client.get("/api/v1/inspections", headers=plant.auth("station")).json["items"]
    assert {i["station"] for i in station} == {"s1"} and len(station) == 1
    everyone = client.get("/api/v1/inspections", headers=plant.auth("manager")).json["items"]
    assert len(everyone) == 3
    other = [i for i in everyone if i["station"] == "s2"][0]
    hidden = client.get(f"/api/v1/inspections/{other['id']}", headers=plant.auth("station"))
    assert hidden.status_code == 404


def test_csv_export(client, plant):
    client.post("/api/v1/results", headers=plant.auth("station"), json=[
        _result("2026-03-02T10:00:00Z", 0.9, defect_type="stain", serial="=cmd()",
                source_name="cam-7.png"),
        _result("2026-03-02T11:00:00Z", 0.1, serial="SN-2")])
    reply = client.get("/api/v1/inspections.csv?product=widget", headers=plant.auth("manager"))
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    assert "attachment" in reply.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    assert [r["verdict"] for r in rows] == ["fail", "pass"]  # oldest first
    assert rows[0]["defect_type"] == "stain" and rows[0]["station"] == "s1"
    assert rows[0]["serial"] == "'=cmd()"  # no formula injection into spreadsheets
    assert [r["source_name"] for r in rows] == ["cam-7.png", ""]


def test_review_agree_disagree_and_validation(client, plant):
    insp = _inspect(client, plant, 200)
    url = f"/api/v1/inspections/{insp['id']}/review"
    engineer = plant.auth("engineer")
    agree = client.post(url, headers=engineer, json={"review": "agree"}).json["review"]
    assert agree["review"] == "agree" and agree["label"] == insp["defect_type"]
    disagree = client.post(url, headers=engineer, json={
        "review": "disagree", "label": "good", "note": "dust on the lens"}).json["review"]
    assert disagree == {**disagree, "review": "disagree", "label": "good",
                        "note": "dust on the lens", "by": "engineer"}
    assert client.post(url, headers=engineer, json={"review": "maybe"}).status_code == 400
    assert client.post(url, headers=engineer, data="x").status_code == 400
    reviewed = client.get("/api/v1/inspections?reviewed=true", headers=engineer).json["items"]
    assert [i["id"] for i in reviewed] == [insp["id"]]


def _unzip(data: bytes, into) -> tuple[str, list[str]]:
    """Unpack a dataset archive; returns its root folder and the names under it."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    archive.extractall(into)
    roots = {n.split("/", 1)[0] for n in archive.namelist()}
    assert len(roots) == 1, roots  # unpacks into one folder, like `qc train` wants it
    return roots.pop(), sorted(n.split("/", 1)[1] for n in archive.namelist())


def test_dataset_export_is_what_qc_train_reads(client, plant, tmp_path):
    engineer = plant.auth("engineer")
    bad = _inspect(client, plant, 220)  # the model fails it; an engineer says good
    good = _inspect(client, plant, 20)  # the model passes it; an engineer says stain
    scratch = _inspect(client, plant, 240)  # failed; the engineer agrees
    assert scratch["defect_type"] == "scratch"  # what the tiny model names this grey level
    untyped = _result("2026-03-02T10:00:00Z", 0.9)  # an edge fail without a defect type
    client.post("/api/v1/results", headers=plant.auth("station"), json=[untyped])
    client.put(f"/api/v1/inspections/{untyped['id']}/image", headers=plant.auth("station"),
               data={"image": upload(png(200))})
    unreviewed = _inspect(client, plant, 30)  # not reviewed: left out by default
    for item, body in ((bad, {"review": "disagree", "label": "good"}),
                       (good, {"review": "disagree", "label": "stain"}),
                       (scratch, {"review": "agree", "label": "scratch"}),
                       (untyped, {"review": "agree"})):
        reply = client.post(f"/api/v1/inspections/{item['id']}/review", headers=engineer,
                            json=body)
        assert reply.status_code == 200, reply.json
    reply = client.get("/api/v1/dataset.zip?product=widget", headers=engineer)
    assert reply.status_code == 200 and reply.mimetype == "application/zip"
    assert "widget-dataset-" in reply.headers["Content-Disposition"]
    root, names = _unzip(reply.data, tmp_path)
    assert root.startswith("widget-dataset-")
    assert names == sorted([f"good/{bad['id']}.png", f"defect/stain/{good['id']}.png",
                            f"defect/{scratch['defect_type']}/{scratch['id']}.png",
                            f"defect/defect/{untyped['id']}.png", "labels.csv"])
    with open(tmp_path / root / "labels.csv", newline="") as fh:
        manifest = {row["id"]: row for row in csv.DictReader(fh)}
    assert list(manifest[bad["id"]]) == ["file", "label", "id", "verdict", "score", "review",
                                         "note"]
    assert manifest[bad["id"]]["label"] == "good" and manifest[bad["id"]]["verdict"] == "fail"
    assert manifest[good["id"]]["file"] == f"defect/stain/{good['id']}.png"
    assert manifest[untyped["id"]]["label"] == "defect"

    data = pytest.importorskip("training.data")  # what `qc train` runs on the folder
    found = data.scan(tmp_path / root, strict=True)
    assert found.count() == {"good": 1, "defect": 3, "defect/defect": 1,
                             "defect/scratch": 1, "defect/stain": 1}
    everything = client.get("/api/v1/dataset.zip?product=widget&reviewed=false", headers=engineer)
    _root, names = _unzip(everything.data, tmp_path / "all")
    assert f"good/{unreviewed['id']}.png" in names  # unreviewed: the model's verdict
    assert client.get("/api/v1/dataset.zip", headers=engineer).status_code == 400
    assert client.get("/api/v1/dataset.zip?product=ghost", headers=engineer).status_code == 404


def _flag(client, plant, inspection_id, note="the model is wrong"):
    return client.post(f"/station/inspections/{inspection_id}/disagree",
                       headers=plant.auth("operator"), json={"note": note})


def test_operator_flag_is_a_doubt_not_a_review(client, plant):
    insp = _inspect(client, plant, 220, role="operator")
    reply = _flag(client, plant, insp["id"], "no scratch there")
    assert reply.status_code == 200
    assert reply.json["operator_flag"]["by"] == "operator"
    engineer = plant.auth("engineer")
    seen = client.get(f"/api/v1/inspections/{insp['id']}", headers=engineer).json
    assert seen["review"] is None
    assert seen["operator_flag"]["note"] == "no scratch there" and seen["operator_flag"]["at"]
    assert client.get("/api/v1/inspections?reviewed=true", headers=engineer).json["items"] == []
    again = client.post(f"/station/inspections/{insp['id']}/disagree", headers=engineer, json={})
    assert again.status_code == 409 and "already flagged by operator" in again.get_data(
        as_text=True)
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/api/v1/inspections.csv", headers=engineer).get_data(as_text=True))))
    assert rows[0]["flagged_by"] == "operator" and rows[0]["review"] == ""
    client.post(f"/api/v1/inspections/{insp['id']}/review", headers=engineer,
                json={"review": "agree", "note": "scratch under the flange"})
    seen = client.get(f"/api/v1/inspections/{insp['id']}", headers=engineer).json
    assert seen["review"]["by"] == "engineer" and seen["operator_flag"]["by"] == "operator"


def test_retention_keeps_failed_images_longer(client, plant, app):
    passed = _inspect(client, plant, 20)
    failed = _inspect(client, plant, 220)
    with app.app_context():
        storage = get_storage()
        later = datetime.now(timezone.utc) + timedelta(days=31)
        result = apply_retention(get_session(), storage, later, pass_days=30, fail_days=365)
        assert result.inspections == 1 and result.files == 2
    manager = plant.auth("manager")
    assert client.get(passed["image_url"], headers=manager).status_code == 404
    assert client.get(failed["image_url"], headers=manager).status_code == 200
    assert client.get(f"/api/v1/inspections/{passed['id']}", headers=manager).json[
        "image_url"] is None
    with app.app_context():
        much_later = datetime.now(timezone.utc) + timedelta(days=400)
        result = apply_retention(get_session(), get_storage(), much_later, 30, 365)
        assert result.inspections == 1
    assert client.get(failed["heatmap_url"], headers=manager).status_code == 404


def test_retention_keeps_flagged_passes_as_long_as_failures(client, plant, app):
    passed = _inspect(client, plant, 20, role="operator")
    flagged = _inspect(client, plant, 25, role="operator")  # passed, but the operator doubts it
    assert _flag(client, plant, flagged["id"]).status_code == 200
    with app.app_context():
        later = datetime.now(timezone.utc) + timedelta(days=31)
        result = apply_retention(get_session(), get_storage(), later, pass_days=30, fail_days=365)
        assert result.inspections == 1
    manager = plant.auth("manager")
    assert client.get(passed["image_url"], headers=manager).status_code == 404
    assert client.get(flagged["image_url"], headers=manager).status_code == 200
