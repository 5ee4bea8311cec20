"""Export a qc model to one self-contained ONNX file and prove it matches torch.

The module handed in takes `image` (N, 3, H, W) RGB 0..255 and returns, in this order,
score, raw_score, anomaly_map and optionally type_probs (qc.inference's graph contract), so
normalization, memory banks and score scaling are all inside the graph.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from qc.inference import INPUT_NAME
from qc.modelpack import ModelInfo, write_info

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-3
OUTPUTS = ("score", "raw_score", "anomaly_map", "type_probs")


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: dict[str, float]
    n_checked: int
    size_bytes: int


def export_onnx(module: nn.Module, info: ModelInfo, out: str | Path, check_images: torch.Tensor,
                tolerance: float = PARITY_TOLERANCE) -> ExportResult:
    """Trace `module` to ONNX (opset 17, dynamic batch), embed `info`, check parity on images."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval().cpu()
    check_images = check_images.float().cpu()
    with torch.no_grad():
        reference = [t.numpy() for t in _as_tuple(module(check_images))]
    names = list(OUTPUTS[: len(reference)])
    w, h = info.input_size
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints are expected here
        raw_path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, h, w),),
            str(raw_path),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={n: {0: "N"} for n in [INPUT_NAME, *names]},
            opset_version=OPSET,
            dynamo=False,
        )
        model = onnx.load(str(raw_path))
    model.producer_name = "qc"
    model.doc_string = f"qc {info.mode} model for {info.product} ({info.version})"
    write_info(model, info)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    diffs = check_parity(out, check_images.numpy(), dict(zip(names, reference)), tolerance)
    log.info("exported %s (%.1f MB), parity max abs diff %s", out, out.stat().st_size / 1e6, diffs)
    return ExportResult(out, diffs, len(check_images), out.stat().st_size)


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def check_parity(path: Path, images: np.ndarray, reference: dict[str, np.ndarray],
                 tolerance: float = PARITY_TOLERANCE) -> dict[str, float]:
    """Max abs difference per output, onnxruntime vs torch; raises ExportError above tolerance."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(reference, session.run(list(reference), {INPUT_NAME: images})))
    diffs = {k: float(np.abs(got[k] - reference[k]).max()) for k in reference}
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > tolerance:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"ONNX output differs from torch by {worst:.2e} (> {tolerance:g}): {diffs}; "
            "the export is unsafe to deploy and was removed"
        )
    return diffs
