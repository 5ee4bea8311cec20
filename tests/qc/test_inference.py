"""The onnxruntime inference core (torch-free)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from qc.inference import Inspector, decide
from qc.modelpack import ModelPackError


def test_verdicts_follow_the_score(tiny_model):
    inspector = Inspector(tiny_model, threads=1)
    bright = inspector.inspect(np.full((48, 40, 3), 230, np.uint8))
    dark = inspector.inspect(np.full((48, 40, 3), 20, np.uint8))
    assert bright.verdict == "fail" and bright.defect_type in ("scratch", "stain")
    assert dark.verdict == "pass" and dark.defect_type is None
    assert bright.anomaly_map.shape == (48, 40)
    assert bright.latency_ms > 0
    assert set(bright.to_dict()) == {"score", "raw_score", "verdict", "defect_type", "latency_ms"}


def test_batch_equals_single(tiny_model):
    inspector = Inspector(tiny_model)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (30, 30, 3), dtype=np.uint8) for _ in range(3)]
    batch = inspector.inspect_batch(images)
    for image, v in zip(images, batch):
        assert v.score == pytest.approx(inspector.inspect(image).score, abs=1e-6)


def test_decision_at_half():
    assert decide(0.5) == "fail" and decide(0.4999) == "pass"


def test_graph_contract_is_checked(tiny_model, tmp_path):
    model = onnx.load(str(tiny_model))
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if i == "image" else i for i in node.input]
    onnx.save(model, str(tmp_path / "renamed.onnx"))
    with pytest.raises(ModelPackError, match="image"):
        Inspector(tmp_path / "renamed.onnx")


def test_core_modules_import_without_torch_or_flask():
    code = (
        "import sys, qc.imaging, qc.modelpack, qc.inference, qc.heatmap, qc.inspect_command;"
        "bad = [m for m in ('torch', 'flask', 'sqlalchemy', 'training') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
