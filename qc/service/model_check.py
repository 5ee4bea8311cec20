"""Checks of an uploaded model package before the service stores it: metadata of the right types
and a warm-up run on two images whose outputs keep the contract (shapes, finite scores in 0..1).
A model that passes cannot make every later inspection of its product fail."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field

from qc.inference import Inspector
from qc.modelpack import PREFIX, ModelInfo, ModelPackError, read_info
from qc.service.schemas import BodyError, Finite, check

log = logging.getLogger(__name__)

Side = Annotated[int, Field(ge=16, le=4096)]
Label = Annotated[str, Field(min_length=1, max_length=64)]


class ModelMetadata(BaseModel):
    """The qc metadata inside an ONNX package (qc.modelpack.ModelInfo), as types."""

    model_config = ConfigDict(strict=True, extra="allow")

    product: Label
    mode: Literal["supervised", "anomaly"]
    input_size: Annotated[list[Side], Field(min_length=2, max_length=2)]
    resize: Literal["stretch", "letterbox"]
    threshold: Finite
    score_scale: dict[str, Finite]
    class_names: list[Label] = Field(default_factory=list)
    defect_types: Annotated[list[Label], Field(max_length=256)] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    version: Annotated[str, Field(max_length=64)] = ""


def _metadata(path: Path) -> dict[str, Any]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelPackError(f"not a readable ONNX file ({type(exc).__name__})") from None
    values = {}
    for prop in model.metadata_props:
        if prop.key.startswith(PREFIX):
            try:
                values[prop.key[len(PREFIX):]] = json.loads(prop.value)
            except ValueError:
                raise ModelPackError(f"metadata {prop.key} is not valid JSON") from None
    return values


def _outputs_keep_the_contract(inspector: Inspector) -> None:
    w, h = inspector.prep.size
    batch = np.stack([np.zeros((3, h, w), np.float32), np.full((3, h, w), 255.0, np.float32)])
    try:
        out = inspector.run(batch)
    except Exception as exc:
        raise ModelPackError(f"fails at warm-up on a batch of 2: {exc}") from None
    n = len(batch)
    shapes = {"score": [(n,), (n, 1)], "raw_score": [(n,), (n, 1)], "anomaly_map": [(n, h, w)]}
    types = inspector.info.defect_types
    if "type_probs" in out:
        shapes["type_probs"] = [(n, len(types))]
    for name, allowed in shapes.items():
        value = np.asarray(out[name])
        if value.dtype.kind != "f" or value.shape not in allowed:
            raise ModelPackError(
                f"output {name!r} is {value.dtype} {value.shape}; expected float {allowed[0]}"
            )
        if not np.isfinite(value).all():
            raise ModelPackError(f"output {name!r} is not finite (NaN or infinity) at warm-up")
    score = np.asarray(out["score"])
    if score.min() < 0 or score.max() > 1:
        raise ModelPackError(f"score must lie in 0..1; warm-up gave {score.ravel().tolist()}")


def check_model(path: Path) -> ModelInfo:
    """The package's ModelInfo if it is usable by the service; ModelPackError says why not."""
    metadata = _metadata(path)
    if not metadata:
        raise ModelPackError(f"not a qc model package: no {PREFIX}* metadata (export with qc)")
    try:
        check(ModelMetadata, metadata)
    except BodyError as exc:
        raise ModelPackError(f"metadata: {exc}") from None
    try:
        info = read_info(path)
        inspector = Inspector(path, warmup=False)
    except ModelPackError:
        raise
    except Exception as exc:  # onnxruntime and metadata parsing raise many types
        raise ModelPackError(f"cannot be loaded ({type(exc).__name__}: {exc})") from None
    _outputs_keep_the_contract(inspector)
    return info
