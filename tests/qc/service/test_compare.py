"""A candidate model against the active one on the reviewed results: recall, false rejects and
the disagreements with photos and heatmaps (API and page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qc.service import registry
from qc.service.database import get_session
from qc.service.storage import get_storage
from tests.qc.service.conftest import png, upload
from tests.support.tiny_model import make_tiny_model


def reviewed(client, plant, value: int, label: str | None) -> str:
    key = plant.auth("engineer")
    item = client.post("/api/v1/inspections", headers=key,
                       data={"product": "widget", "image": upload(png(value))}).json
    body = {"review": "agree"} if label is None else {"review": "disagree", "label": label}
    assert client.post(f"/api/v1/inspections/{item['id']}/review", headers=key,
                       json=body).status_code == 200
    return item["id"]


def strict_model(path: Path) -> Path:
    """The tiny model with score = min(brightness + 0.2, 1): mid-grey parts fail with it (and
    its scores stay in 0..1, as model uploads check)."""
    make_tiny_model(path, version="tiny-strict")
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.output == ["score"])
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.2, np.float32), "c02"))
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "c1"))
    node.CopyFrom(helper.make_node("Add", ["raw_score", "c02"], ["shifted"]))
    at = list(model.graph.node).index(node) + 1
    model.graph.node.insert(at, helper.make_node("Min", ["shifted", "c1"], ["score"]))
    onnx.save(model, str(path))
    return path


def candidate(app, tmp_path) -> int:
    """The strict model stored (not active) for widget."""
    path = strict_model(tmp_path / "strict.onnx")
    with app.app_context():
        db = get_session()
        version = registry.upload_model(db, get_storage(), path, registry.find(
            db, registry.Product, "widget", "product"), "engineer")
        db.commit()
        return version.id


def test_compare_counts_recall_false_rejects_and_disagreements(app, client, plant, tmp_path):
    reviewed(client, plant, 20, None)  # good, both pass
    mid = reviewed(client, plant, 100, None)  # good: the active passes it, the candidate fails it
    reviewed(client, plant, 230, "scratch")  # a defect both catch (the review names its type)
    model_id = candidate(app, tmp_path)
    reply = client.get(f"/api/v1/models/{model_id}/comparison", headers=plant.auth("engineer"))
    assert reply.status_code == 200, reply.json
    body = reply.json
    assert body["units"] == 3
    assert body["candidate"]["recall"] == 1.0 and body["candidate"]["false_reject_rate"] == 0.5
    assert body["active"]["recall"] == 1.0 and body["active"]["false_reject_rate"] == 0.0
    assert body["disagreement_count"] == 1
    (d,) = body["disagreements"]
    assert d["id"] == mid and d["label"] == "good"
    assert (d["candidate"]["verdict"], d["active"]["verdict"]) == ("fail", "pass")
    assert d["photo"].startswith("data:image/jpeg;base64,")
    assert d["candidate"]["heatmap"].startswith("data:image/jpeg;base64,")


def test_compare_refuses_bad_input(client, plant):
    key = plant.auth("engineer")
    assert client.get("/api/v1/models/999/comparison", headers=key).status_code == 404
    for last in ("0", "x", "100000"):
        reply = client.get(f"/api/v1/models/1/comparison?last={last}", headers=key)
        assert reply.status_code == 400 and "last" in reply.json["error"]["message"]
