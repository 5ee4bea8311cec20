"""Photos sent to the service: read from multipart fields, decoded within a memory budget by a
bounded number of threads at once, and heatmaps rendered for people to look at.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator

import cv2
import numpy as np
from flask import Flask, current_app, request
from werkzeug.datastructures import FileStorage

from qc.heatmap import encode_jpeg, overlay
from qc.imaging import ImageError, read_image_bounded
from qc.service.errors import ServiceError

log = logging.getLogger(__name__)

HEATMAP_MAX_SIDE = 1280  # stored heatmaps are for eyes, not measurement
# Why 448: twice the usual model input; a photo at least twice this on its shorter side is
# decoded reduced (JPEG natively), which keeps inference and the heatmap sharp enough.
DECODE_MIN_SIDE = 448
EXTENSION = "qc.decode_slots"
_OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-f]+>")


def init_app(app: Flask) -> None:
    """At most MAX_DECODES photos are decoded and inspected at once per process."""
    app.extensions[EXTENSION] = threading.BoundedSemaphore(app.config["MAX_DECODES"])


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the process's decode slots (waits for one to be free)."""
    slots: threading.BoundedSemaphore = current_app.extensions[EXTENSION]
    with slots:
        yield


def upload_bytes(field: str = "image", required: bool = True) -> bytes | None:
    """The bytes of a multipart file field; ServiceError when required and missing or empty."""
    upload: FileStorage | None = request.files.get(field)
    if upload is None:
        if not required:
            return None
        got = ", ".join(sorted(set(request.files) | set(request.form))) or "none"
        raise ServiceError(
            f"send the photo as multipart/form-data file field {field!r} (fields received: {got})"
        )
    data = upload.read()
    if not data:
        raise ServiceError(f"field {field!r} is an empty file")
    return data


def decode(data: bytes) -> np.ndarray:
    """RGB uint8 of an uploaded photo (call inside decode_slot()); 400 with the reason."""
    config = current_app.config
    try:
        return read_image_bounded(
            data, config["MAX_IMAGE_PIXELS"], config["MAX_DECODED_BYTES"], DECODE_MIN_SIDE
        )
    except ImageError as exc:
        message = _OBJECT_REPR.sub("", str(exc))  # Pillow names the BytesIO it was given
        raise ServiceError(f"image refused: {message}", 400) from None


def heatmap_jpeg(image: np.ndarray, amap: np.ndarray) -> bytes:
    """The anomaly map over the photo, at most HEATMAP_MAX_SIDE px, as JPEG."""
    scale = HEATMAP_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        amap = cv2.resize(amap, size, interpolation=cv2.INTER_LINEAR)
    return encode_jpeg(overlay(image, amap), quality=85)
