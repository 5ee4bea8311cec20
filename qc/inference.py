"""Run an exported qc model with onnxruntime alone and return typed verdicts.

Graph contract (checked at load): input `image` float32 (N, 3, H, W) RGB 0..255; outputs
`score` (N,) on the 0..1 scale with the decision at 0.5, `raw_score` (N,), `anomaly_map`
(N, H, W) on the same 0..1 scale, and optionally `type_probs` (N, K) over ModelInfo.defect_types.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qc.imaging import map_to_image, preprocess_batch, read_image
from qc.modelpack import ModelInfo, ModelPackError

log = logging.getLogger(__name__)

INPUT_NAME = "image"
REQUIRED_OUTPUTS = ("score", "raw_score", "anomaly_map")
DECISION = 0.5  # every qc model is calibrated so that its threshold sits at score 0.5


@dataclass
class Verdict:
    """The outcome of inspecting one image."""

    score: float  # 0..1, higher = more likely defective; fail at >= 0.5
    raw_score: float
    verdict: str  # "pass" | "fail"
    defect_type: str | None
    latency_ms: float
    anomaly_map: np.ndarray | None = field(default=None, repr=False)  # (H, W) 0..1, image coords

    def to_dict(self) -> dict:
        """JSON-ready fields (without the map)."""
        return {
            "score": round(self.score, 6),
            "raw_score": round(self.raw_score, 6),
            "verdict": self.verdict,
            "defect_type": self.defect_type,
            "latency_ms": round(self.latency_ms, 3),
        }


def decide(score: float) -> str:
    """The verdict for a score on the common scale."""
    return "fail" if score >= DECISION else "pass"


class Inspector:
    """An onnxruntime session for one qc model package."""

    def __init__(self, model_path: str | Path, threads: int | None = None, warmup: bool = True):
        self.path = Path(model_path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=_providers()
            )
        except Exception as exc:
            raise ModelPackError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        self.info = _read_session_info(self.session)
        self.prep = self.info.preprocessing
        self._check_contract()
        self.outputs = [o.name for o in self.session.get_outputs()]
        if warmup:
            self.run(np.zeros((1, 3, self.prep.size[1], self.prep.size[0]), np.float32))

    def _check_contract(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(float)":
            raise ModelPackError(f"{self.path}: expected one float input named {INPUT_NAME!r}")
        shape = inputs[0].shape
        w, h = self.prep.size
        if len(shape) != 4 or list(shape[1:]) != [3, h, w]:
            raise ModelPackError(f"{self.path}: input {shape} does not match metadata {w}x{h}")
        names = {o.name for o in self.session.get_outputs()}
        missing = [n for n in REQUIRED_OUTPUTS if n not in names]
        if missing:
            raise ModelPackError(f"{self.path}: graph lacks outputs {missing}")

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on a preprocessed batch (N, 3, H, W); returns outputs by name."""
        values = self.session.run(self.outputs, {INPUT_NAME: batch})
        return dict(zip(self.outputs, values))

    def inspect(self, image: np.ndarray, with_map: bool = True) -> Verdict:
        """Inspect one RGB uint8 image."""
        return self.inspect_batch([image], with_map=with_map)[0]

    def inspect_batch(self, images: list[np.ndarray], with_map: bool = True) -> list[Verdict]:
        """Inspect RGB uint8 images; latency is per image (preprocess + inference)."""
        start = time.perf_counter()
        out = self.run(preprocess_batch(images, self.prep))
        per_image_ms = (time.perf_counter() - start) * 1000 / max(1, len(images))
        verdicts = []
        for i, image in enumerate(images):
            score = float(out["score"][i])
            amap = None
            if with_map:
                amap = map_to_image(out["anomaly_map"][i], image.shape[:2], self.prep)
            verdicts.append(
                Verdict(
                    score=score,
                    raw_score=float(out["raw_score"][i]),
                    verdict=decide(score),
                    defect_type=self._defect_type(out, i, score),
                    latency_ms=per_image_ms,
                    anomaly_map=amap,
                )
            )
        return verdicts

    def inspect_file(self, path: str | Path | bytes, with_map: bool = True) -> Verdict:
        """Decode and inspect one file (or encoded bytes); latency includes decoding."""
        start = time.perf_counter()
        image = read_image(path)
        verdict = self.inspect(image, with_map=with_map)
        verdict.latency_ms = (time.perf_counter() - start) * 1000
        return verdict

    def _defect_type(self, out: dict[str, np.ndarray], i: int, score: float) -> str | None:
        if decide(score) == "pass":
            return None
        types = self.info.defect_types
        if "type_probs" in out and types:
            return types[int(np.argmax(out["type_probs"][i]))]
        return types[0] if len(types) == 1 else None


def _providers() -> list[str]:
    # Why: stations are CPU machines; QC_ORT_PROVIDERS lets a GPU box opt in explicitly.
    wanted = os.environ.get("QC_ORT_PROVIDERS")
    if wanted:
        return wanted.split(",")
    return ["CPUExecutionProvider"]


def _read_session_info(session: ort.InferenceSession) -> ModelInfo:
    """ModelInfo from the session's metadata (no second parse of the file)."""
    return ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
