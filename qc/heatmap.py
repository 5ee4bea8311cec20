"""Render where a model sees a defect: a colour map over the photo and the contour of the region
above the decision threshold. Used by `qc inspect --heatmaps`, the station page and reports.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc.inference import DECISION

# Why: below this a map value is background; drawing it would tint the whole photo.
VISIBLE_FROM = 0.25
ALPHA = 0.5  # colour weight at the strongest point


def overlay(image: np.ndarray, amap: np.ndarray, threshold: float = DECISION) -> np.ndarray:
    """Blend a 0..1 anomaly map (H, W) over an RGB uint8 image; outline values >= threshold."""
    if amap.shape != image.shape[:2]:
        amap = cv2.resize(amap.astype(np.float32), (image.shape[1], image.shape[0]))
    amap = np.clip(np.nan_to_num(amap.astype(np.float32)), 0.0, 1.0)
    colour = cv2.applyColorMap((amap * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (np.clip((amap - VISIBLE_FROM) / (1 - VISIBLE_FROM), 0, 1) * ALPHA)[..., None]
    out = image.astype(np.float32) * (1 - weight) + colour * weight
    out = out.astype(np.uint8)
    region = (amap >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(max(image.shape[:2]) / 300))
    cv2.drawContours(out, contours, -1, (255, 255, 255), thickness + 1)
    cv2.drawContours(out, contours, -1, (255, 0, 0), thickness)
    return out


def encode_png(image: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 -> JPEG bytes (smaller, for stored heatmaps and thumbnails)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
