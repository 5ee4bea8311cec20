"""Products, stations, users and model versions through the API."""

from __future__ import annotations

import io

import onnx
from onnx import TensorProto, helper

from tests.qc.service.conftest import png, upload
from tests.support.tiny_model import make_tiny_model


def test_products_create_and_update_costs(client, plant):
    admin = plant.auth("admin")
    made = client.post("/api/v1/products", headers=admin,
                       json={"name": "gear", "sku": "G-9", "escape_cost": 80})
    assert made.status_code == 201
    assert made.json["costs"]["escape_cost"] == 80 and made.json["costs"]["manual_miss_rate"] == 0.2
    assert client.post("/api/v1/products", headers=admin, json={"name": "gear"}).status_code == 409
    bad = client.patch("/api/v1/products/gear", headers=admin, json={"manual_miss_rate": 2})
    assert bad.status_code == 400 and "within 0..1" in bad.json["error"]["message"]
    bad = client.patch("/api/v1/products/gear", headers=admin, json={"color": 1})
    assert bad.status_code == 400 and "unknown field 'color'" in bad.json["error"]["message"]
    ok = client.patch("/api/v1/products/gear", headers=admin, json={"qc_cost_per_unit": 0.01})
    assert ok.json["costs"]["qc_cost_per_unit"] == 0.01
    names = [p["name"] for p in client.get("/api/v1/products", headers=plant.auth("station"))
             .json["items"]]
    assert names == ["gear", "widget"]


def test_stations_key_is_shown_once_and_rotates(client, plant):
    admin = plant.auth("admin")
    made = client.post("/api/v1/stations", headers=admin, json={"name": "s2", "line": "L2"})
    assert made.status_code == 201 and made.json["api_key"].startswith("qc_")
    key = made.json["api_key"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json
    assert me == {"username": "station:s2", "role": "station", "via_key": True}
    listed = client.get("/api/v1/stations", headers=admin).json["items"]
    assert all("api_key" not in s for s in listed)
    new = client.post("/api/v1/stations/s2/key", headers=admin).json["api_key"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_users(client, plant):
    admin = plant.auth("admin")
    made = client.post("/api/v1/users", headers=admin, json={"username": "ann", "role": "manager"})
    assert made.status_code == 201 and len(made.json["password"]) >= 12
    assert client.post("/api/v1/users", headers=admin,
                       json={"username": "bob", "role": "boss"}).status_code == 400
    assert client.post("/api/v1/users", headers=admin,
                       json={"username": "bob", "role": "operator", "password": "short"}
                       ).status_code == 400
    changed = client.patch("/api/v1/users/ann", headers=admin, json={"role": "engineer"})
    assert changed.json["role"] == "engineer"
    key = client.post("/api/v1/users/ann/key", headers=admin).json["api_key"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json
    assert me["role"] == "engineer"
    users = client.get("/api/v1/users", headers=admin).json["items"]
    assert {u["username"] for u in users} >= {"ann", "admin"}
    assert all("password_hash" not in u for u in users)


def _upload_model(client, plant, path, product="widget", activate=True):
    with open(path, "rb") as fh:
        data = fh.read()
    return client.post("/api/v1/models", headers=plant.auth("engineer"), data={
        "model": (io.BytesIO(data), "m.onnx"), "product": product,
        "activate": "true" if activate else "false"})


def test_model_upload_activate_and_rollback(client, plant, tmp_path):
    v2 = make_tiny_model(tmp_path / "v2.onnx", version="tiny-2", threshold=0.6)
    reply = _upload_model(client, plant, v2)
    assert reply.status_code == 201 and reply.json["active"] and reply.json["version"] == "tiny-2"
    again = _upload_model(client, plant, v2)
    assert again.json["id"] == reply.json["id"]  # same checksum: same version
    inspected = client.post("/api/v1/inspections", headers=plant.auth("station"),
                            data={"product": "widget", "image": upload(png(200))})
    assert inspected.json["model_version"] == "tiny-2"
    back = client.post("/api/v1/products/widget/rollback", headers=plant.auth("engineer"))
    assert back.status_code == 200 and back.json["version"] == "tiny-1"
    models = client.get("/api/v1/models?product=widget", headers=plant.auth("manager")).json
    assert [(m["version"], m["active"]) for m in models["items"]] == [("tiny-2", False),
                                                                       ("tiny-1", True)]
    actions = [(a["action"], a["by"]) for a in models["activations"]]
    assert actions[0] == ("rollback", "engineer") and ("activate", "engineer") in actions
    activate = client.post(f"/api/v1/models/{reply.json['id']}/activate",
                           headers=plant.auth("engineer"))
    assert activate.json["active"] is True


def test_rollback_without_history_is_409(client, plant):
    client.post("/api/v1/products", headers=plant.auth("admin"), json={"name": "gear"})
    reply = client.post("/api/v1/products/gear/rollback", headers=plant.auth("engineer"))
    assert reply.status_code == 409


def test_non_qc_onnx_and_wrong_product_are_refused(client, plant, tmp_path):
    plain = tmp_path / "plain.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(plain))
    reply = _upload_model(client, plant, plain)
    assert reply.status_code == 400 and "not a qc model package" in reply.json["error"]["message"]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx at all")
    assert _upload_model(client, plant, junk).status_code == 400
    other = make_tiny_model(tmp_path / "gear.onnx", product="gear")
    reply = _upload_model(client, plant, other)
    assert reply.status_code == 400 and "trained for product 'gear'" in reply.json["error"][
        "message"]
    missing = client.post("/api/v1/models", headers=plant.auth("engineer"),
                          data={"product": "widget"})
    assert missing.status_code == 400 and "'model'" in missing.json["error"]["message"]


def test_station_downloads_the_active_model(client, plant):
    reply = client.get("/api/v1/products/widget/model", headers=plant.auth("station"))
    assert reply.status_code == 200
    assert reply.data == plant.model_path.read_bytes()
    assert len(reply.headers["X-Model-Sha256"]) == 64
    assert reply.headers["X-Model-Version"] == "tiny-1"
