"""Model uploads are checked before they are stored: metadata types and a warm-up run whose
outputs keep the contract (issue 14, row 5). Each crafted model used to be accepted and then
broke every inspection of its product (500), or scored NaN as a pass."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.support.tiny_model import make_tiny_model


def _craft(path, node_change=None, meta=None):
    make_tiny_model(path)
    model = onnx.load(str(path))
    graph = model.graph
    if node_change:
        node_change(graph)
    for key, value in (meta or {}).items():
        prop = next(p for p in model.metadata_props if p.key == "qc." + key)
        prop.value = json.dumps(value)
    onnx.save(model, str(path))
    return path


def _score_times(value: float):
    def change(graph):
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "k"))
        node = next(n for n in graph.node if n.output[0] == "score")
        node.CopyFrom(helper.make_node("Mul", ["raw_score", "k"], ["score"]))
    return change


def _map_with_channel(graph):
    node = next(n for n in graph.node if n.output[0] == "anomaly_map")
    node.CopyFrom(helper.make_node("ReduceMean", ["unit", "axes_c"], ["anomaly_map"], keepdims=1))
    out = next(o for o in graph.output if o.name == "anomaly_map")
    out.CopyFrom(helper.make_tensor_value_info("anomaly_map", onnx.TensorProto.FLOAT,
                                               ["N", 1, 32, 32]))


def _batch_of_one_only(graph):
    graph.initializer.append(numpy_helper.from_array(np.array([1, 32, 32], np.int64), "one"))
    node = next(n for n in graph.node if n.output[0] == "anomaly_map")
    node.output[0] = "map_n"
    graph.node.append(helper.make_node("Reshape", ["map_n", "one"], ["anomaly_map"]))


CRAFTED = {
    "nan score": ({"node_change": _score_times(float("nan"))}, "not finite"),
    "score out of range": ({"node_change": _score_times(5.0)}, "0..1"),
    "map shape": ({"node_change": _map_with_channel}, "anomaly_map"),
    "warm-up fails": ({"node_change": _batch_of_one_only}, "warm-up"),
    "defect types not strings": ({"meta": {"defect_types": [1, 2]}}, "defect_types"),
    "defect type too long": ({"meta": {"defect_types": ["x" * 65]}}, "defect_types"),
    "input size text": ({"meta": {"input_size": "abc"}}, "input_size"),
    "resize unknown": ({"meta": {"resize": "foo"}}, "resize"),
}


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_models_are_refused_with_the_reason(client, plant, tmp_path, name):
    kwargs, needle = CRAFTED[name]
    path = _craft(tmp_path / "crafted.onnx", **kwargs)
    engineer = plant.auth("engineer")
    before = client.get("/api/v1/models", headers=engineer).json["items"]
    with open(path, "rb") as fh:
        reply = client.post("/api/v1/models", headers=engineer,
                            data={"model": (fh, "m.onnx"), "product": "widget"})
    assert reply.status_code == 400, reply.json
    assert needle in reply.json["error"]["message"]
    assert client.get("/api/v1/models", headers=engineer).json["items"] == before


def test_a_model_for_another_product_says_how_to_fix_it(client, plant, tmp_path):
    path = make_tiny_model(tmp_path / "gear.onnx", product="gear")
    with open(path, "rb") as fh:
        reply = client.post("/api/v1/models", headers=plant.auth("engineer"),
                            data={"model": (fh, "m.onnx"), "product": "widget"})
    assert reply.status_code == 400
    assert "qc train DATA --product widget" in reply.json["error"]["message"]
