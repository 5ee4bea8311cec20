"""Decoding, validation and the one preprocessing function."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from qc import imaging
from qc.imaging import ImageError, Preprocessing, parse_size, preprocess, read_image


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _gradient(h=40, w=60) -> np.ndarray:
    """An RGB image whose channels differ, so channel-order bugs show."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, np.full_like(x, 50)], -1).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff"])
def test_lossless_formats_decode_to_rgb(tmp_path, ext):
    rgb = _gradient()
    path = tmp_path / f"img{ext}"
    path.write_bytes(_encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ext))
    assert np.array_equal(read_image(path), rgb)


def test_jpeg_and_bytes_input():
    rgb = _gradient()
    data = _encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ".jpg")
    out = read_image(data)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 6


def test_gray_and_16bit_become_rgb8(tmp_path):
    gray16 = (np.arange(40 * 60, dtype=np.uint32).reshape(40, 60) * 27 % 65536).astype(np.uint16)
    path = tmp_path / "gray16.png"
    path.write_bytes(_encode(gray16, ".png"))
    out = read_image(path)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    expected = np.round(gray16 / 257.0).astype(np.uint8)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1
    assert np.array_equal(out[..., 0], out[..., 2])


def test_alpha_channel_is_dropped(tmp_path):
    bgra = np.dstack([cv2.cvtColor(_gradient(), cv2.COLOR_RGB2BGR), np.full((40, 60), 128)])
    path = tmp_path / "alpha.png"
    path.write_bytes(_encode(bgra.astype(np.uint8), ".png"))
    assert np.array_equal(read_image(path), _gradient())


def test_exif_orientation_is_honoured(tmp_path):
    rgb = _gradient(40, 60)  # landscape pixels, EXIF says "rotate 90 CW" (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    out = read_image(buf.getvalue())
    assert out.shape == (60, 40, 3)  # displayed upright: portrait


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable image"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_truncated_jpeg_is_refused():
    data = _encode(_gradient(200, 200), ".jpg")
    with pytest.raises(ImageError, match="truncated|not a readable"):
        read_image(data[: len(data) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but carries almost no pixel data (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))


def test_huge_dimensions_refused_from_the_header():
    with pytest.raises(ImageError, match="pixel limit"):
        read_image(_png_header_only(30000, 30000))
    with pytest.raises(ImageError, match="9000x9000 px is over"):
        read_image(_png_header_only(9000, 9000))


def test_parse_size():
    assert parse_size("320") == (320, 320)
    assert parse_size("224x512") == (224, 512)
    with pytest.raises(ValueError):
        parse_size("big")


def test_preprocess_contract_stretch():
    image = _gradient(40, 60)
    x = preprocess(image, Preprocessing((32, 16), "stretch"))
    assert x.shape == (3, 16, 32) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255
    # channel 0 is red: the x-gradient, increasing left to right
    assert x[0, 8, -1] > x[0, 8, 0]


def test_letterbox_keeps_aspect_and_pads_neutral():
    image = np.full((20, 80, 3), 200, np.uint8)
    prep = Preprocessing((40, 40), "letterbox")
    x = preprocess(image, prep)
    assert x.shape == (3, 40, 40)
    assert np.all(x[:, 0, :] == imaging.PAD_VALUE) and np.all(x[:, 20, :] == 200)
    amap = np.zeros((40, 40), np.float32)
    amap[15:25] = 1.0  # the content band
    back = imaging.map_to_image(amap, image.shape[:2], prep)
    assert back.shape == (20, 80) and back.min() > 0.99


def test_preprocessing_rejects_bad_settings():
    with pytest.raises(ValueError):
        Preprocessing((224, 224), "crop")
    with pytest.raises(ImageError):
        preprocess(np.zeros((10, 10), np.uint8), Preprocessing((16, 16)))


def test_quality_stats_tell_dark_from_bright():
    dark = imaging.quality_stats(np.full((50, 50, 3), 5, np.uint8))
    bright = imaging.quality_stats(np.full((50, 50, 3), 250, np.uint8))
    assert dark["brightness"] < 10 < bright["brightness"]
    assert dark["dark_fraction"] == 1.0 and bright["bright_fraction"] == 1.0
