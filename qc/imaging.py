"""Decode, validate and preprocess images: the ONE implementation used by training, export and
inference (edge station and service alike), so what a model saw in training is what it sees later.

Contract of a preprocessed image: float32, shape (3, H, W), RGB, values 0..255. Normalization
(mean/scale) is *not* done here: it lives inside each exported ONNX graph.

Imports only numpy, OpenCV and Pillow (header checks): stations install this without torch.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
RESIZE_POLICIES = ("stretch", "letterbox")
# Why: 50 MP covers every industrial camera we know of, and a 30000x30000 "image" (a decompression
# bomb) is refused from its header before any pixel is decoded.
MAX_PIXELS = int(os.environ.get("QC_MAX_IMAGE_PIXELS", 50_000_000))
MAX_BYTES = int(os.environ.get("QC_MAX_IMAGE_BYTES", 64 * 1024 * 1024))
# Why 127: the graph normalizes with (x - 127) / 128, so letterbox bars become exactly zero.
PAD_VALUE = 127


class ImageError(ValueError):
    """An input that is not a usable image; the message says what is wrong."""


@dataclass(frozen=True)
class Preprocessing:
    """How images are brought to the model's input: size (W, H) and resize policy."""

    size: tuple[int, int] = (224, 224)
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, not {self.resize!r}")
        w, h = self.size
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ValueError(f"input size must be 16..4096 px per side, got {w}x{h}")


def parse_size(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """Parse '320' or '320x240' (W x H) into (W, H)."""
    if isinstance(text, tuple):
        return int(text[0]), int(text[1])
    if isinstance(text, int):
        return text, text
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise ValueError(f"size must look like 320 or 320x240 (width x height), not {text!r}")


def is_image_path(path: Path) -> bool:
    """True if the file name has a supported image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a file path or encoded bytes to an RGB uint8 array (H, W, 3).

    Honours EXIF orientation; accepts 8/16-bit, gray, colour and alpha images; refuses files
    that are empty, too large, not images or truncated, raising ImageError with the reason.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "upload"
    else:
        path = Path(source)
        name = str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file ({exc.strerror})") from exc
        if size > MAX_BYTES:
            raise ImageError(f"{name}: file is {size} bytes, over the {MAX_BYTES}-byte limit")
        data = path.read_bytes()
    if not data:
        raise ImageError(f"{name}: file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    _check_header(data, name, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)")
    return _to_rgb8(image, name)


def read_image_bounded(
    data: bytes, max_pixels: int, max_decoded_bytes: int, min_side: int
) -> np.ndarray:
    """Decode untrusted upload bytes like read_image, within a memory budget.

    The header gives the size and bit depth before any pixel is decoded: an image whose decoded
    pixels would exceed max_decoded_bytes at its own depth is decoded straight to 8 bit, and one
    whose 8-bit pixels still would is refused. An image at least twice min_side on its shorter
    side is decoded reduced by 2, 4 or 8 (JPEG decodes reduced; other formats are shrunk at once).
    """
    if not data:
        raise ImageError("upload: file is empty")
    width, height, depth_bytes = _check_header(data, "upload", max_pixels)
    rgb8 = width * height * 3
    if rgb8 > max_decoded_bytes:
        raise ImageError(
            f"upload: {width}x{height} px needs {rgb8 / 2**20:.0f} MB decoded, over the "
            f"{max_decoded_bytes / 2**20:.0f} MB limit; downscale it or raise QC_MAX_DECODED_MB"
        )
    factor = next((k for k in (8, 4, 2) if min(width, height) // k >= min_side), 1)
    if factor > 1:
        flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    elif rgb8 * depth_bytes > max_decoded_bytes:
        flags = cv2.IMREAD_COLOR  # 16 bit or float decoded straight to 8 bit
    else:
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageError("upload: not a readable image (corrupt or unsupported format)")
    return _to_rgb8(image, "upload")


def _sample_bytes(im: Image.Image, data: bytes) -> int:
    """Bytes per decoded sample (1, 2 or 4) from the header; Pillow reports 16-bit RGB as RGB."""
    if data[:4] == b"\x89PNG" and len(data) > 24 and data[24] == 16:
        return 2
    if im.mode in ("I", "F"):
        return 4
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    bits = max(bits) if isinstance(bits, tuple) and bits else bits
    if im.mode.startswith("I;16") or (isinstance(bits, int) and bits > 8):
        return 2 if not isinstance(bits, int) or bits <= 16 else 4
    return 1


def _check_header(data: bytes, name: str, max_pixels: int) -> tuple[int, int, int]:
    """Read only the header: refuse non-images, truncated files and oversized dimensions;
    return (width, height, bytes per decoded sample)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            depth = _sample_bytes(im, data)
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} px is over the {max_pixels:,}-pixel limit; "
                    "downscale the image or raise QC_MAX_IMAGE_PIXELS"
                )
            im.verify()  # checks structure (e.g. PNG CRCs) without decoding every pixel
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image is over the {max_pixels:,}-pixel limit ({exc})") from exc
    except Exception as exc:  # Pillow raises many types for bad headers
        raise ImageError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if _is_truncated_jpeg(data):
        raise ImageError(f"{name}: JPEG is truncated (no end-of-image marker)")
    return width, height, depth


def _is_truncated_jpeg(data: bytes) -> bool:
    """JPEGs end with FFD9; OpenCV silently decodes truncated ones as grey, so check it here."""
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]


def _to_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    """Convert OpenCV's BGR output of any depth to RGB uint8."""
    if image.dtype == np.uint16:
        # Why /257: maps 0..65535 onto 0..255 exactly; 12-bit cameras should save scaled data.
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def letterbox_geometry(src_hw: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where an image of src (H, W) lands inside a letterboxed (W, H) canvas: x, y, w, h."""
    src_h, src_w = src_hw
    dst_w, dst_h = size
    scale = min(dst_w / src_w, dst_h / src_h)
    w, h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    return (dst_w - w) // 2, (dst_h - h) // 2, w, h


def _interpolation(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    # Why: INTER_AREA avoids aliasing when shrinking (thin cracks survive); LINEAR when enlarging.
    shrinking = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def resize(image: np.ndarray, prep: Preprocessing, pad: int = PAD_VALUE) -> np.ndarray:
    """Resize an (H, W, C) uint8 image to the model input size by the given policy."""
    w, h = prep.size
    src_hw = image.shape[:2]
    if prep.resize == "stretch":
        return cv2.resize(image, (w, h), interpolation=_interpolation(src_hw, (h, w)))
    x, y, bw, bh = letterbox_geometry(src_hw, prep.size)
    canvas = np.full((h, w) + image.shape[2:], pad, dtype=np.uint8)
    canvas[y : y + bh, x : x + bw] = cv2.resize(
        image, (bw, bh), interpolation=_interpolation(src_hw, (bh, bw))
    )
    return canvas


def preprocess(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> model input float32 (3, H', W'), values 0..255."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    resized = resize(image, prep)  # (H', W', 3)
    return np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)  # (3, H', W')


def preprocess_batch(images: list[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """Stack preprocessed images into (N, 3, H, W) float32."""
    return np.stack([preprocess(im, prep) for im in images])


def map_to_image(amap: np.ndarray, src_hw: tuple[int, int], prep: Preprocessing) -> np.ndarray:
    """Bring a model-input-sized map (H', W') back onto the original image (H, W)."""
    src_h, src_w = src_hw
    if prep.resize == "letterbox":
        x, y, w, h = letterbox_geometry(src_hw, prep.size)
        amap = amap[y : y + h, x : x + w]
    return cv2.resize(amap.astype(np.float32), (src_w, src_h), interpolation=cv2.INTER_LINEAR)


def read_mask(path: str | os.PathLike, hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a defect mask as bool (H, W); resized (nearest) to hw if given."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ImageError(f"{path}: not a readable mask image")
    if hw is not None and mask.shape != tuple(hw):
        mask = cv2.resize(mask, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def quality_stats(image: np.ndarray) -> dict[str, float]:
    """Brightness, contrast, sharpness and clipping of an RGB image (for the station guard)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (256, 256), interpolation=cv2.INTER_AREA)
    return {
        "brightness": float(small.mean()),
        "contrast": float(small.std()),
        "sharpness": float(cv2.Laplacian(small, cv2.CV_64F).var()),
        "dark_fraction": cv2.countNonZero((gray < 8).view(np.uint8)) / gray.size,
        "bright_fraction": cv2.countNonZero((gray > 247).view(np.uint8)) / gray.size,
    }
