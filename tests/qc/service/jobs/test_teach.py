"""Teach mode: taught photos are training images (not inspections) counted toward the trainer's
minimum, and a job without a zip trains on them."""

from __future__ import annotations

from qc.service import registry
from qc.service.database import get_session
from qc.service.jobs import runner
from tests.qc.service.conftest import png, upload


def teach(client, plant, label, value=60, role="operator", product="gadget"):
    return client.post(f"/api/v1/products/{product}/taught-photos", headers=plant.auth(role),
                       data={"label": label, "image": upload(png(value))})


def add_gadget(app):
    with app.app_context():
        db = get_session()
        registry.create_product(db, "gadget")
        db.commit()


def test_taught_photos_count_and_are_no_inspections(app, client, plant):
    add_gadget(app)
    first = teach(client, plant, "good")
    assert first.status_code == 201, first.json
    body = teach(client, plant, " Scratch ", value=220).json
    assert body["label"] == "scratch"
    assert (body["good"], body["defect"], body["defect_types"]) == (1, 1, {"scratch": 1})
    assert body["need"]["good"] >= 5  # the trainer's own minimum
    counts = client.get("/api/v1/products/gadget/taught-photos", headers=plant.auth("engineer"))
    assert counts.json["good"] == 1
    items = client.get("/api/v1/inspections?product=gadget", headers=plant.auth("engineer"))
    assert items.json["items"] == []  # not inspections, not in the statistics


def test_teaching_refuses_bad_input(app, client, plant):
    add_gadget(app)
    assert teach(client, plant, "good", product="nope").status_code == 404
    for label in ("", "defect", "x" * 65, "///"):
        reply = teach(client, plant, label)
        assert reply.status_code == 400 and "label" in reply.json["error"]["message"]
    bad = client.post("/api/v1/products/gadget/taught-photos", headers=plant.auth("operator"),
                      data={"label": "good", "image": upload(b"not an image")})
    assert bad.status_code == 400 and "image refused" in bad.json["error"]["message"]
    assert client.get("/api/v1/products/gadget/taught-photos",
                      headers=plant.auth("operator")).json["good"] == 0
    assert teach(client, plant, "good", role="manager").status_code == 403


def test_job_without_zip_trains_on_taught_photos(app, client, plant, queue):
    add_gadget(app)
    for i in range(6):
        assert teach(client, plant, "good", value=40 + i).status_code == 201
    start = client.post("/api/v1/training-jobs", headers=plant.auth("engineer"), data={
        "product": "gadget", "mode": "anomaly", "size": "64", "epochs": "1"})
    assert start.status_code == 201, start.json
    job = start.json
    assert job["dataset"] == "reviewed results and taught photos"
    assert runner.run_job(app, job["id"]) == "succeeded"
    done = client.get(f"/api/v1/training-jobs/{job['id']}", headers=plant.auth("engineer")).json
    assert "6 good, 0 defect images" in done["log"]
