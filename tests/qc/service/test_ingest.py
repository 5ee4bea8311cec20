"""POST /api/v1/inspections (the service inspects) and POST /api/v1/results (the edge did)."""

from __future__ import annotations

import random
import struct
import threading
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
from sqlalchemy import event, func, select

from edge.agent import build_result
from edge.config import from_dict
from edge.sources import Frame
from qc.db.models import Inspection, InspectionCount, ModelVersion
from qc.inference import Verdict
from qc.service.database import get_session
from qc.service.ingest import inspection_row, record
from tests.edge.conftest import base_settings, merge
from tests.qc.service.conftest import png, upload


def _post_image(client, plant, data, role="station", **form):
    fields = {"product": plant.product, "image": upload(data), **form}
    return client.post("/api/v1/inspections", headers=plant.auth(role), data=fields,
                       content_type="multipart/form-data")


def test_inspection_fails_bright_and_passes_dark(client, plant):
    bright = _post_image(client, plant, png(240), lot="L7", serial="SN1")
    dark = _post_image(client, plant, png(20))
    assert bright.status_code == 201 and dark.status_code == 201
    assert bright.json["verdict"] == "fail" and bright.json["defect_type"] in ("scratch", "stain")
    assert dark.json["verdict"] == "pass" and dark.json["defect_type"] is None
    assert bright.json["model_version"] == "tiny-1" and bright.json["station"] == "s1"
    assert bright.json["score"] == pytest.approx(240 / 255, abs=1e-3)
    assert bright.json["latency_ms"] > 0
    heat = client.get(bright.json["heatmap_url"], headers=plant.auth("station"))
    assert heat.status_code == 200 and heat.mimetype == "image/jpeg"
    image = client.get(bright.json["image_url"], headers=plant.auth("manager"))
    assert image.data == png(240)


def test_inspection_id_is_idempotent(client, plant, app):
    ident = str(uuid.uuid4())
    first = _post_image(client, plant, png(240), id=ident)
    again = _post_image(client, plant, png(10), id=ident.upper())
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["verdict"] == "fail" and again.json["id"] == ident
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Inspection)) == 1


def test_operator_inspection_records_the_operator(client, plant, app):
    reply = _post_image(client, plant, png(10), role="operator", operator="someone-else")
    assert reply.status_code == 201
    with app.app_context():
        assert get_session().get(Inspection, reply.json["id"]).operator == "operator"


def _truncated_png() -> bytes:
    data = png(200, (64, 64))
    return data[: len(data) // 2]


def _huge_png_header(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG signature and IHDR claiming 30000x30000 px (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        (b"this is not an image", "not a readable image"),
        (_truncated_png(), "image refused"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "image refused"),
        (_huge_png_header(), "pixel limit"),
        (b"", "empty"),
    ],
    ids=["text", "truncated-png", "garbage", "30000x30000", "empty"],
)
def test_bad_images_get_4xx_with_a_clear_message(client, plant, data, expect):
    reply = _post_image(client, plant, data)
    assert reply.status_code == 400
    assert expect in reply.json["error"]["message"]
    assert "0x" not in reply.json["error"]["message"]


def test_truncated_jpeg_is_refused(client, plant):
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 200, np.uint8))
    reply = _post_image(client, plant, buf.tobytes()[:-200])
    assert reply.status_code == 400 and "truncated" in reply.json["error"]["message"].lower()


def test_wrong_field_and_missing_product(client, plant):
    wrong = client.post("/api/v1/inspections", headers=plant.auth("station"),
                        data={"product": "widget", "photo": upload(png(10))})
    assert wrong.status_code == 400
    assert "'image'" in wrong.json["error"]["message"] and "photo" in wrong.json["error"]["message"]
    unknown = client.post("/api/v1/inspections", headers=plant.auth("station"),
                          data={"product": "nope", "image": upload(png(10))})
    assert unknown.status_code == 400 and "unknown product" in unknown.json["error"]["message"]
    bad_id = _post_image(client, plant, png(10), id="123")
    assert bad_id.status_code == 400 and "UUID" in bad_id.json["error"]["message"]


def test_upload_over_the_size_limit_is_413(client, plant, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    reply = _post_image(client, plant, png(10, (200, 200)) + b"\x00" * 2000)
    assert reply.status_code == 413 and "QC_MAX_UPLOAD_MB" in reply.json["error"]["message"]


def test_product_without_active_model_is_409(client, plant, app):
    admin = plant.auth("admin")
    assert client.post("/api/v1/products", headers=admin, json={"name": "gear"}).status_code == 201
    reply = client.post("/api/v1/inspections", headers=plant.auth("station"),
                        data={"product": "gear", "image": upload(png(10))})
    assert reply.status_code == 409 and "qc models upload" in reply.json["error"]["message"]


def _results(n: int, product: str = "widget", **extra) -> list[dict]:
    return [{"id": str(uuid.uuid4()), "product": product, "timestamp": "2026-03-02T10:15:00Z",
             "score": 0.9 if i % 4 == 0 else 0.1, "defect_type": "scratch",
             "model_version": "tiny-1", **extra} for i in range(n)]


def test_results_batch_twice_records_once(client, plant, app):
    batch = _results(100)
    first = client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    again = client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    assert first.json == {"received": 100, "accepted": 100, "already_known": 0, "rejected": []}
    assert again.json == {"received": 100, "accepted": 0, "already_known": 100, "rejected": []}
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.count()).select_from(Inspection)) == 100
        assert db.scalar(select(func.sum(InspectionCount.count))) == 100
        fails = db.scalar(select(func.sum(InspectionCount.count)).where(
            InspectionCount.verdict == "fail"))
        assert fails == 25
        row = db.scalars(select(Inspection)).first()
        assert row.station.name == "s1" and row.source == "edge" and row.model_version_id


def test_results_duplicates_inside_a_batch_and_partial_overlap(client, plant):
    batch = _results(3)
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=batch + batch[:1])
    assert reply.json["accepted"] == 3 and reply.json["already_known"] == 1
    more = client.post("/api/v1/results", headers=plant.auth("station"),
                       json={"results": batch[1:] + _results(2)})
    assert more.json["accepted"] == 2 and more.json["already_known"] == 2


def test_results_bad_items_are_rejected_one_by_one(client, plant):
    good = _results(1)
    bad = [
        {**_results(1)[0], "id": "nope"},
        {**_results(1)[0], "score": 3},
        {**_results(1)[0], "timestamp": "yesterday"},
        {**_results(1)[0], "product": "ghost"},
        {**_results(1)[0], "station": "other"},
        {**_results(1)[0], "verdict": "maybe"},
        {k: v for k, v in _results(1)[0].items() if k != "timestamp"},
        "not an object",
    ]
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=good + bad)
    assert reply.status_code == 200 and reply.json["accepted"] == 1
    errors = [r["error"] for r in reply.json["rejected"]]
    assert [r["index"] for r in reply.json["rejected"]] == list(range(1, 9))
    for needle, error in zip(["UUID", "0..1", "ISO 8601", "unknown product", "belongs to station",
                              "verdict", "timestamp is required", "JSON object"], errors):
        assert needle in error


def test_edge_results_keep_their_image_quality_flags(client, plant, tmp_path):
    """The agent's own records (edge.agent.build_result) go in; their flags come back out."""
    settings = merge(base_settings(tmp_path, model=plant.model_path), {"station": {"name": "s1"}})
    config = from_dict(settings, base_dir=tmp_path)
    blurred = build_result(config, Frame(name="cam-1.png", key="cam-1", captured_at=1767225600.0),
                           Verdict(0.7, 0.7, "fail", "scratch", 3.2),
                           ["blurred", "drift:brightness"], "tiny-1")
    clean = build_result(config, Frame(name="cam-2.png", key="cam-2", captured_at=1767225601.0),
                         Verdict(0.1, 0.1, "pass", None, 3.0), [], "tiny-1")
    assert blurred["source_name"] == "cam-1.png"
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=[blurred, clean])
    assert reply.json["accepted"] == 2, reply.json
    listed = client.get("/api/v1/inspections", headers=plant.auth("engineer")).json["items"]
    flags = {i["id"]: i["flags"] for i in listed}
    assert flags == {blurred["id"]: ["blurred", "drift:brightness"], clean["id"]: []}
    one = client.get(f"/api/v1/inspections/{blurred['id']}", headers=plant.auth("manager")).json
    assert one["flags"] == ["blurred", "drift:brightness"]
    assert one["source_name"] == "cam-1.png"  # traceable to the file at the station
    bad = [{**_results(1)[0], "flags": flags}
           for flags in ("blurred", [3], ["x" * 65], [f"f{i}" for i in range(17)])]
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=bad)
    assert reply.json["accepted"] == 0 and len(reply.json["rejected"]) == 4
    assert all("flags" in r["error"] for r in reply.json["rejected"])


def test_results_keep_the_source_name(client, plant, app):
    """Stored trimmed; absent, null or blank is None; 255 characters fit (as on PostgreSQL)."""
    names = ["cam-1.png", "  line 2/frame-7.jpg \t", None, "", "x" * 255]
    batch = [{**_results(1)[0], "source_name": name} for name in names] + _results(1)
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    assert reply.json["accepted"] == 6 and reply.json["rejected"] == [], reply.json
    auth = plant.auth("engineer")
    got = [client.get(f"/api/v1/inspections/{r['id']}", headers=auth).json["source_name"]
           for r in batch]
    assert got == ["cam-1.png", "line 2/frame-7.jpg", None, None, "x" * 255, None]
    with app.app_context():
        assert get_session().get(Inspection, batch[0]["id"]).source_name == "cam-1.png"


def test_results_with_a_bad_source_name_are_rejected_one_by_one(client, plant, app):
    good = _results(1, source_name="cam-1.png")
    bad = [{**_results(1)[0], "source_name": name} for name in ("x" * 256, 17, ["a.png"])]
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=good + bad)
    assert reply.status_code == 200 and reply.json["accepted"] == 1
    assert [r["index"] for r in reply.json["rejected"]] == [1, 2, 3]
    assert [r["id"] for r in reply.json["rejected"]] == [b["id"] for b in bad]
    long, number, listed = (r["error"] for r in reply.json["rejected"])
    assert long == "source_name is longer than 255 characters"
    assert "source_name must be a string" in number and "17" in number
    assert "source_name must be a string" in listed
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.count()).select_from(Inspection)) == 1
        assert db.get(Inspection, good[0]["id"]).source_name == "cam-1.png"


def test_spec_describes_the_flags_edge_results_carry(client):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    result = schemas["ResultIn"]["properties"]
    flags, name = result["flags"]["anyOf"][0], result["source_name"]["anyOf"][0]
    assert flags["type"] == "array" and flags["maxItems"] == 16
    assert name["maxLength"] == 255
    assert "not stored" not in result["source_name"]["description"]
    inspection = schemas["InspectionOut"]["properties"]
    assert {"flags", "operator_flag", "review", "source_name"} <= set(inspection)
    listed = spec["paths"]["/inspections"]["get"]["responses"]["200"]
    ref = listed["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    item = schemas[ref]["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
    assert schemas[item]["properties"]["flags"]["type"] == "array"


def test_results_body_must_be_a_list_and_not_too_long(client, plant, app):
    reply = client.post("/api/v1/results", headers=plant.auth("station"), data="x")
    assert reply.status_code == 400 and "JSON list" in reply.json["error"]["message"]
    app.config["MAX_BATCH"] = 5
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=_results(6))
    assert reply.status_code == 413


def test_image_for_an_edge_result(client, plant):
    result = _results(1)[0]
    client.post("/api/v1/results", headers=plant.auth("station"), json=[result])
    url = f"/api/v1/inspections/{result['id']}/image"
    assert client.get(url, headers=plant.auth("station")).status_code == 404
    bad = client.put(url, headers=plant.auth("station"), data={"image": upload(b"junk")})
    assert bad.status_code == 400
    put = client.put(url, headers=plant.auth("station"),
                     data={"image": upload(png(200)), "heatmap": upload(png(100), "h.png")})
    assert put.status_code == 200 and put.json["heatmap_url"]
    assert client.get(url, headers=plant.auth("station")).data == png(200)


def test_naive_timestamps_are_utc_and_times_come_back_aware(client, plant):
    result = {**_results(1)[0], "timestamp": "2026-03-02T10:15:00"}
    client.post("/api/v1/results", headers=plant.auth("station"), json=[result])
    got = client.get(f"/api/v1/inspections/{result['id']}", headers=plant.auth("manager")).json
    assert got["inspected_at"] == "2026-03-02T10:15:00+00:00"


def test_future_timestamps_are_refused(client, plant):
    result = {**_results(1)[0], "timestamp": "2999-01-01T00:00:00Z"}
    reply = client.post("/api/v1/results", headers=plant.auth("station"), json=[result])
    assert "station clock" in reply.json["rejected"][0]["error"]


def test_station_last_seen_is_updated(client, plant):
    client.post("/api/v1/results", headers=plant.auth("station"), json=_results(1))
    stations = client.get("/api/v1/stations", headers=plant.auth("manager")).json["items"]
    assert stations[0]["last_seen_at"] is not None


def test_concurrent_duplicate_batches_record_once(plant, app):
    batch = _results(50)
    replies: list[dict] = []

    def send() -> None:
        reply = app.test_client().post("/api/v1/results", headers=plant.auth("station"),
                                       json=batch)
        replies.append(reply.json)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["accepted"] for r in replies) == 50
    assert sum(r["already_known"] for r in replies) == 150
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.count()).select_from(Inspection)) == 50
        assert db.scalar(select(func.sum(InspectionCount.count))) == 50


def test_concurrent_overlapping_batches_in_any_order_never_fail(plant, app):
    """Stations re-send overlapping batches in any order: no deadlock, no unique-key 500."""
    def send(batch: list[dict], replies: list) -> None:
        reply = app.test_client().post("/api/v1/results", headers=plant.auth("station"),
                                       json=batch)
        replies.append((reply.status_code, reply.json))

    rng = random.Random(3)
    for _round in range(5):
        results = _results(60)
        batches = [rng.sample(results, 40) for _ in range(4)]
        replies: list = []
        threads = [threading.Thread(target=send, args=(b, replies)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [code for code, _ in replies] == [200] * 4, replies
        got = {r["id"] for b in batches for r in b}
        assert sum(body["accepted"] for _, body in replies) == len(got)
        assert sum(body["already_known"] for _, body in replies) == 160 - len(got)
    with app.app_context():
        db = get_session()
        total = db.scalar(select(func.count()).select_from(Inspection))
        assert db.scalar(select(func.sum(InspectionCount.count))) == total


def _statements_of_a_post(client, plant, app, batch: list[dict]) -> list[str]:
    """The SQL statements one POST /results sends (an executemany counts once)."""
    sent: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    engine = app.extensions["qc.db"].engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        reply = client.post("/api/v1/results", headers=plant.auth("station"), json=batch)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert reply.json["accepted"] == len(batch), reply.json
    return sent


def test_statements_per_batch_do_not_grow_with_the_batch(client, plant, app):
    """No per-row round trips: 5 and 500 results cost the same statements (on PostgreSQL the very
    same texts, so psycopg caches and prepares them instead of parsing 10,000 parameters)."""
    _statements_of_a_post(client, plant, app, _results(1))  # first request: caches warm
    small = _statements_of_a_post(client, plant, app, _results(5, station="s1"))
    large = _statements_of_a_post(client, plant, app, _results(500, station="s1"))
    assert len(small) == len(large) <= 7, large
    if app.extensions["qc.db"].dialect == "postgresql":
        assert small == large
    assert not any(s.lstrip().upper().startswith("SELECT STATIONS") for s in small[1:]), small


def test_record_stores_every_column_as_given(app, plant):
    """The bulk insert keeps types: aware times, JSON flags, NULL (not JSON null) for no flags."""
    with app.app_context():
        db = get_session()
        product_id, version_id = db.execute(select(ModelVersion.product_id, ModelVersion.id)).one()
        when = datetime(2026, 3, 2, 10, 15, 30, 250000, tzinfo=timezone(timedelta(hours=2)))
        full = inspection_row(
            id=str(uuid.uuid4()), product_id=product_id, station_id=None,
            model_version_id=version_id, model_version="tiny-1", lot="L1", serial="SN1",
            operator="op", inspected_at=when, received_at=when, source="edge", score=0.75,
            raw_score=1.5, verdict="fail", defect_type="scratch", latency_ms=3.25,
            image_path="a.png", heatmap_path="b.jpg", flags=["blurred", "drift:x"],
            source_name="cam-1.png")
        bare = inspection_row(id=str(uuid.uuid4()), product_id=product_id, inspected_at=when,
                              received_at=when, source="edge", score=0.1, verdict="pass")
        flagged = [dict(bare, id=str(uuid.uuid4()), flags=flags)
                   for flags in (["a", "b"], ["c"], ["d", "e"], [])]
        rows = [full, bare, dict(full, lot="second copy"), *flagged]
        assert record(db, rows) == {full["id"], bare["id"]} | {r["id"] for r in flagged}
        db.commit()
        db.expire_all()
        got = db.get(Inspection, full["id"])
        for name, value in full.items():
            assert getattr(got, name) == value, name
        assert got.inspected_at.utcoffset() == timedelta(0)
        assert db.get(Inspection, bare["id"]).flags is None
        assert [db.get(Inspection, r["id"]).flags for r in flagged] == [r["flags"] for r in flagged]
        assert db.scalar(select(func.count()).where(Inspection.flags.is_(None))) == 1
        assert record(db, [bare]) == set()


def test_record_takes_any_inspection_columns(app, plant):
    """The demo's rows carry reviews and the stats bench's leave columns out: both go in."""
    with app.app_context():
        db = get_session()
        product_id = db.scalar(select(ModelVersion.product_id))
        when = datetime(2026, 3, 2, 10, 15, tzinfo=timezone.utc)
        rows = [{"id": str(uuid.uuid4()), "product_id": product_id, "station_id": None,
                 "inspected_at": when, "defect_type": None,
                 "score": 0.9, "verdict": "fail", "review": review, "reviewed_by": "engineer",
                 "reviewed_at": when} for review in ("agree", "disagree")]
        assert record(db, rows) == {r["id"] for r in rows}
        db.commit()
        db.expire_all()
        got = [db.get(Inspection, r["id"]) for r in rows]
        assert [g.review for g in got] == ["agree", "disagree"]
        assert all(g.reviewed_at == when and g.flags is None for g in got)
        assert all(g.source == "server" and g.received_at is not None for g in got)  # defaults
