"""A tiny supervised run end to end: training -> ONNX -> the same numbers at the station."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from qc.imaging import preprocess_batch, read_image
from qc.inference import Inspector
from qc.modelpack import read_info
from training import data as ds
from training.calibration import ScoreScale
from training.export import ExportError, export_onnx
from training.supervised import SupervisedConfig, SupervisedExport, SupervisedNet


def test_training_writes_a_complete_model_package(trained_model, tiny_dataset):
    info = read_info(trained_model.path)
    assert info.mode == "supervised" and info.product == "flange"
    assert info.input_size == (64, 64) and info.defect_types == ["scratch", "stain"]
    assert info.score_scale["threshold"] == pytest.approx(info.threshold)
    assert {"auroc", "recall", "false_reject_rate", "threshold"} <= set(info.metrics)
    assert info.data_fingerprint == ds.fingerprint(ds.scan(tiny_dataset).samples, tiny_dataset)
    assert info.training["n_train"] == 28 and info.training["folds"] == 5
    assert info.metrics["split"] == "out-of-fold (5 folds)" and info.metrics["trade_off"]
    assert info.training["uses_masks"] and info.image_stats["brightness"]["mean"] > 0
    assert info.version.startswith("flange-")
    model = onnx.load(str(trained_model.path))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_station_path_matches_torch(trained_model, tiny_dataset):
    """Parity through the whole serving path: file -> qc.imaging -> onnxruntime vs torch."""
    info = read_info(trained_model.path)
    paths = [s.path for s in ds.scan(tiny_dataset).samples[::5]]
    images = [read_image(p) for p in paths]
    inspector = Inspector(trained_model.path, threads=1)
    served = inspector.run(preprocess_batch(images, info.preprocessing))
    assert served["score"].shape == (len(paths),)
    assert served["anomaly_map"].shape == (len(paths), 64, 64)
    assert served["type_probs"].shape == (len(paths), 2)
    assert np.all((served["score"] >= 0) & (served["score"] <= 1))
    scale = ScoreScale(**info.score_scale)
    assert np.allclose(served["score"], scale.apply(served["raw_score"]), atol=1e-5)
    verdicts = inspector.inspect_batch(images)
    assert [v.score for v in verdicts] == pytest.approx(served["score"].tolist(), abs=1e-6)


def test_export_refuses_a_graph_that_differs_from_torch(tmp_path, trained_model):
    info = read_info(trained_model.path)
    net = SupervisedNet(SupervisedConfig(n_types=0)).eval()

    class Drifting(torch.nn.Module):
        """Differs between tracing and checking: eager calls return shifted scores."""

        def __init__(self):
            super().__init__()
            self.inner = SupervisedExport(net, ScoreScale(0, 0.5, 1), seg_map=False)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            score, raw, amap = self.inner(x)
            return score + (0.1 if self.calls == 1 else 0.0), raw, amap

    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(Drifting(), info, tmp_path / "bad.onnx", torch.rand(2, 3, 64, 64) * 255)
    assert not (tmp_path / "bad.onnx").exists()
