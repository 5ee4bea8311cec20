"""The model package: one ONNX file whose metadata_props say everything needed to run it.

This is the one place that knows the metadata keys. Each field of ModelInfo is stored under
`qc.<field>` as JSON, so other ONNX tools show it and onnxruntime alone can read it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import onnx

from qc.imaging import Preprocessing

log = logging.getLogger(__name__)

PREFIX = "qc."
FORMAT_VERSION = 1
MODES = ("supervised", "anomaly")


class ModelPackError(ValueError):
    """A file that is not a usable qc model package."""


@dataclass
class ModelInfo:
    """Everything about a model that travels inside its ONNX file."""

    product: str
    mode: str  # "supervised" | "anomaly"
    input_size: tuple[int, int]  # (W, H)
    resize: str  # "stretch" | "letterbox"
    threshold: float  # decision threshold on raw_score; score = 0.5 there
    score_scale: dict  # {"low", "threshold", "high"}: raw anchors mapped to 0, 0.5, 1
    class_names: list[str] = field(default_factory=lambda: ["good", "defect"])
    defect_types: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # validation metrics (recall, false_reject_rate…)
    data_fingerprint: str = ""
    training: dict = field(default_factory=dict)  # images used, epochs, seconds, device, params
    image_stats: dict = field(default_factory=dict)  # training-image quality stats for the guard
    version: str = ""
    qc_version: str = ""
    created_at: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def preprocessing(self) -> Preprocessing:
        """The preprocessing this model expects."""
        return Preprocessing(size=tuple(self.input_size), resize=self.resize)

    def to_props(self) -> dict[str, str]:
        """Metadata as ONNX key/value strings."""
        return {PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelInfo:
        """Rebuild from ONNX metadata; raises ModelPackError if keys are missing or unreadable."""
        values = {}
        for f in fields(cls):
            key = PREFIX + f.name
            if key in props:
                try:
                    values[f.name] = json.loads(props[key])
                except json.JSONDecodeError as exc:
                    raise ModelPackError(f"metadata {key} is not valid JSON") from exc
        required = ("product", "mode", "input_size", "resize", "threshold", "score_scale")
        missing = [k for k in required if k not in values]
        if missing:
            raise ModelPackError(
                f"not a qc model package: metadata lacks {', '.join(PREFIX + k for k in missing)}"
            )
        values["input_size"] = tuple(values["input_size"])
        if values["mode"] not in MODES:
            raise ModelPackError(f"unknown model mode {values['mode']!r}")
        if int(values.get("format_version", 1)) > FORMAT_VERSION:
            raise ModelPackError("model package is newer than this qc; upgrade qc")
        return cls(**values)


def write_info(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Replace the qc metadata of an in-memory ONNX model."""
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in info.to_props().items():
        model.metadata_props.add(key=key, value=value)


def read_info(path: str | Path) -> ModelInfo:
    """Read the ModelInfo of an ONNX model file."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelPackError(f"{path}: not a readable ONNX file ({exc})") from exc
    return info_from_proto(model)


def info_from_proto(model: onnx.ModelProto) -> ModelInfo:
    """Read the ModelInfo of an in-memory ONNX model."""
    return ModelInfo.from_props({p.key: p.value for p in model.metadata_props})


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (model checksums for download and upload)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
