"""A tiny but valid qc model package built with onnx.helper (no torch), for tests of the
inference, service and edge code. Its raw score is the image's mean brightness / 255, so tests
control the verdict with the image they send: bright images fail, dark ones pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qc.modelpack import ModelInfo, write_info


def make_tiny_model(
    path: str | Path,
    product: str = "widget",
    size: tuple[int, int] = (32, 32),
    threshold: float = 0.5,
    defect_types: tuple[str, ...] = ("scratch", "stain"),
    version: str = "tiny-1",
) -> Path:
    """Write a qc ONNX package: score = raw = mean(image)/255, map = per-pixel brightness."""
    w, h = size
    k = len(defect_types)
    inits = [
        numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes_chw"),
        numpy_helper.from_array(np.array([1], np.int64), "axes_c"),
        numpy_helper.from_array(np.ones((1, max(k, 1)), np.float32) / max(k, 1), "uniform"),
    ]
    nodes = [
        helper.make_node("Div", ["image", "c255"], ["unit"]),
        helper.make_node("ReduceMean", ["unit", "axes_chw"], ["raw_score"], keepdims=0),
        helper.make_node("Identity", ["raw_score"], ["score"]),
        helper.make_node("ReduceMean", ["unit", "axes_c"], ["anomaly_map"], keepdims=0),
        helper.make_node("Unsqueeze", ["raw_score", "axes_c"], ["raw_col"]),
        helper.make_node("Mul", ["raw_col", "uniform"], ["type_probs_raw"]),
        helper.make_node("Softmax", ["type_probs_raw"], ["type_probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_qc",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, h, w])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("raw_score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", h, w]),
            helper.make_tensor_value_info("type_probs", TensorProto.FLOAT, ["N", max(k, 1)]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    info = ModelInfo(
        product=product,
        mode="supervised",
        input_size=(w, h),
        resize="stretch",
        threshold=threshold,
        score_scale={"low": 0.0, "threshold": threshold, "high": 1.0},
        defect_types=list(defect_types),
        class_names=["good", "defect"],
        metrics={"recall": 0.95, "false_reject_rate": 0.02, "auroc": 0.99},
        data_fingerprint="sha256:tiny",
        version=version,
        qc_version="test",
        created_at="2026-01-01T00:00:00Z",
    )
    write_info(model, info)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
