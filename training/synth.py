"""Deterministic synthetic product images for the qc dataset convention.

Renders a turned steel flange (bore, raised hub, six bolt holes) lying on a dark
inspection mat, with turning marks, an anisotropic highlight, chamfer shading, a
cast shadow, a lighting gradient, vignetting, exposure variation and sensor noise.
Defective images add one defect (scratch, crack, dent, stain) and a pixel mask
that covers exactly the pixels the defect altered.

Layout written by :func:`generate_dataset`::

    OUT/good/good_000.jpg
    OUT/defect/<type>/<type>_000.jpg
    OUT/masks/<type>/<type>_000.png   (255 = defect, 0 = fine; same stem as its image)
    OUT/README.md

Every image has its own sub-seed derived from ``(seed, category, index)``, so the
same arguments always produce byte-identical files. Only numpy and OpenCV are used.

CLI::

    python -m training.synth OUT_DIR [--good 48] [--per-type 12] [--size 256] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

DEFECT_TYPES: tuple[str, ...] = ("scratch", "crack", "dent", "stain")
JPEG_QUALITY = 92
MASK_THRESHOLD = 3.0 / 255.0  # a pixel counts as altered when any channel moves this much
MIN_MASK_PIXELS = 4
SUPERSAMPLE = 4  # thin strokes are drawn at this factor and area-downsampled

# Part geometry, in units of the outer radius.
BORE_R, HUB_R, PITCH_R, HOLE_R, N_HOLES = 0.30, 0.56, 0.78, 0.085, 6
CHAMFER_OUT, CHAMFER_BORE, CHAMFER_HOLE = 0.03, 0.04, 0.03

F32 = np.float32


@dataclass(frozen=True)
class Pose:
    """Where the part sits in the image (pixels, radians)."""

    cx: float
    cy: float
    angle: float
    radius: float  # outer radius in pixels


@dataclass
class Scene:
    """A rendered defect-free frame plus what defects need to know about it."""

    image: np.ndarray  # float32 HxWx3 RGB, lit, before sensor noise
    metal: np.ndarray  # bool HxW, pixels fully on the part (defects are clipped to it)
    surface: np.ndarray  # bool HxW, flat faces away from edges (defects start here)
    light: tuple[float, float]  # unit vector towards the light, image coordinates
    pose: Pose


@dataclass
class Sample:
    """One rendered image: RGB uint8, its defect mask (uint8 0/255) or None, part mask."""

    image: np.ndarray
    mask: np.ndarray | None
    part: np.ndarray


# --------------------------------------------------------------------------- scene


def _sample_pose(rng: np.random.Generator, size: int) -> Pose:
    """Small placement jitter: translation, rotation, scale."""
    shift = rng.uniform(-0.06, 0.06, size=2) * size
    return Pose(
        cx=size / 2 + float(shift[0]),
        cy=size / 2 + float(shift[1]),
        angle=float(rng.uniform(-math.pi / 6, math.pi / 6)),
        radius=0.37 * size * float(rng.uniform(0.92, 1.06)),
    )


def _band(x: np.ndarray, lo: float, hi: float, aa: float) -> np.ndarray:
    """Anti-aliased indicator of lo <= x <= hi (aa = one pixel in x units)."""
    return np.clip((x - lo) / aa + 0.5, 0, 1) * np.clip((hi - x) / aa + 0.5, 0, 1)


def _noise_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth zero-mean, unit-ish noise: a coarse random grid upsampled bicubically."""
    grid = rng.normal(size=(cells, cells)).astype(F32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _hole_centres(pose: Pose) -> list[tuple[float, float]]:
    """Bolt-hole centres in image pixels."""
    out = []
    for k in range(N_HOLES):
        a = pose.angle + 2 * math.pi * k / N_HOLES
        out.append(
            (
                pose.cx + PITCH_R * pose.radius * math.cos(a),
                pose.cy + PITCH_R * pose.radius * math.sin(a),
            )
        )
    return out


def _geometry(size: int, pose: Pose) -> dict[str, np.ndarray]:
    """Per-pixel polar coordinates of the part plus distances to the bolt holes."""
    ys, xs = np.mgrid[0:size, 0:size].astype(F32) + F32(0.5)
    dx, dy = xs - F32(pose.cx), ys - F32(pose.cy)
    r = np.hypot(dx, dy) / F32(pose.radius)
    theta = np.arctan2(dy, dx)
    hole_d = np.full((size, size), np.inf, F32)
    hole_t = np.zeros((size, size), F32)
    for hx, hy in _hole_centres(pose):
        hdx, hdy = xs - F32(hx), ys - F32(hy)
        d = np.hypot(hdx, hdy) / F32(pose.radius)
        closer = d < hole_d
        hole_d = np.where(closer, d, hole_d)
        hole_t = np.where(closer, np.arctan2(hdy, hdx), hole_t)
    return {"xs": xs, "ys": ys, "r": r, "theta": theta, "hole_d": hole_d, "hole_t": hole_t}


def _turning_marks(rng: np.random.Generator, r: np.ndarray, pose: Pose) -> np.ndarray:
    """Concentric lathe marks: a noisy radial profile, slightly modulated around the part."""
    n = int(pose.radius * 1.2 * 2) + 8
    fine = cv2.GaussianBlur(rng.normal(size=(1, n)).astype(F32), (0, 0), 0.7).ravel()
    coarse = cv2.GaussianBlur(rng.normal(size=(1, n)).astype(F32), (0, 0), n / 40).ravel()
    grid = np.linspace(0, 1.2, n, dtype=F32)
    marks = 0.05 * np.interp(r, grid, fine) + 0.25 * np.interp(r, grid, coarse)
    return marks.astype(F32)


def _metal_shading(
    rng: np.random.Generator, g: dict[str, np.ndarray], pose: Pose, light: float
) -> np.ndarray:
    """Grey level of the steel: faces with anisotropic highlight, chamfers, hub step."""
    r, aa = g["r"], 1.0 / pose.radius
    rel = np.cos(g["theta"] - F32(light))
    lobes = (rel * rel) ** F32(rng.uniform(4, 9))
    marks = _turning_marks(rng, r, pose)
    size = r.shape[0]
    mottle = 0.025 * _noise_field(rng, size, 6)
    hub = _band(r, 0, HUB_R, aa)
    face = 0.50 + 0.05 * hub + rng.uniform(0.22, 0.34) * lobes * (1 - 0.35 * hub) + marks + mottle
    step = np.exp(-(((r - HUB_R) / (1.2 * aa)) ** 2))
    face = face + step * 0.22 * rel
    out_ch = _band(r, 1 - CHAMFER_OUT, 2, aa)
    bore_ch = _band(r, 0, BORE_R + CHAMFER_BORE, aa)
    hole_ch = _band(g["hole_d"], 0, HOLE_R + CHAMFER_HOLE, aa)
    hole_rel = np.cos(g["hole_t"] - F32(light))
    face = face * (1 - out_ch) + out_ch * (0.45 + 0.35 * rel)
    face = face * (1 - bore_ch) + bore_ch * (0.45 - 0.35 * rel)
    face = face * (1 - hole_ch) + hole_ch * (0.45 - 0.35 * hole_rel)
    return face.astype(F32)


def _part_alpha(g: dict[str, np.ndarray], pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the part (holes cut out) and of its solid outline (for the shadow)."""
    aa = 1.0 / pose.radius
    solid = _band(g["r"], -1, 1, aa)
    alpha = solid * _band(g["r"], BORE_R, 9, aa) * _band(g["hole_d"], HOLE_R, 9, aa)
    return alpha.astype(F32), solid.astype(F32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark, slightly textured inspection mat."""
    base = np.array([0.17, 0.20, 0.21], F32) * F32(rng.uniform(0.85, 1.15))
    base = base + rng.uniform(-0.015, 0.015, size=3).astype(F32)
    grain = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(F32), (0, 0), 0.8)
    tex = 1 + 0.05 * grain + 0.06 * _noise_field(rng, size, 5)
    return tex[..., None] * base


def _illumination(rng: np.random.Generator, g: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Exposure gain x linear lighting gradient x vignetting."""
    a = rng.uniform(0, 2 * math.pi)
    c = size / 2
    ramp = ((g["xs"] - c) * math.cos(a) + (g["ys"] - c) * math.sin(a)) / size
    rr = np.hypot(g["xs"] - c, g["ys"] - c) / (0.72 * size)
    field = (1 + rng.uniform(0.12, 0.3) * ramp) * (1 - rng.uniform(0.12, 0.3) * rr * rr)
    return (field * rng.uniform(0.88, 1.12)).astype(F32)


def _shadow(solid: np.ndarray, light: tuple[float, float], size: int) -> np.ndarray:
    """Soft cast shadow of the part, shifted away from the light."""
    off = 0.035 * size
    m = np.float32([[1, 0, -light[0] * off], [0, 1, -light[1] * off]])
    shifted = cv2.warpAffine(solid, m, (size, size))
    return cv2.GaussianBlur(shifted, (0, 0), 0.02 * size + 0.5)


def render_scene(rng: np.random.Generator, size: int) -> Scene:
    """Render a defect-free flange on the mat (float image, before sensor noise)."""
    pose = _sample_pose(rng, size)
    light = float(np.deg2rad(-135 + rng.uniform(-15, 15)))
    ldir = (math.cos(light), math.sin(light))
    g = _geometry(size, pose)
    alpha, solid = _part_alpha(g, pose)
    tint = np.array([0.92, 0.96, 1.0], F32) + rng.uniform(-0.02, 0.02, 3).astype(F32)
    metal_rgb = _metal_shading(rng, g, pose, light)[..., None] * tint
    bg = _background(rng, size) * (1 - 0.6 * _shadow(solid, ldir, size))[..., None]
    img = alpha[..., None] * metal_rgb + (1 - alpha[..., None]) * bg
    img = img * _illumination(rng, g, size)[..., None]
    aa, r, hd = 1.5 / pose.radius, g["r"], g["hole_d"]
    surface = (
        (r > BORE_R + CHAMFER_BORE + aa)
        & (r < 1 - CHAMFER_OUT - aa)
        & (hd > HOLE_R + CHAMFER_HOLE + aa)
    )
    metal = cv2.erode((alpha > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return Scene(image=img.astype(F32), metal=metal, surface=surface, light=ldir, pose=pose)


# --------------------------------------------------------------------------- defects


def _pick_on_surface(rng: np.random.Generator, scene: Scene) -> tuple[float, float]:
    """A random (x, y) pixel centre on the flat faces of the part."""
    ys, xs = np.nonzero(scene.surface)
    i = int(rng.integers(len(xs)))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def _draw_strokes(
    size: int, strokes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Rasterise polylines (points, widths px, values 0..1) supersampled; returns HxW 0..1."""
    ss = SUPERSAMPLE
    canvas = np.zeros((size * ss, size * ss), np.uint8)
    for pts, widths, values in strokes:
        fixed = np.round(pts * ss * 16).astype(np.int64)  # 4 bits of sub-pixel precision
        for k in range(len(pts) - 1):
            cv2.line(
                canvas,
                tuple(int(v) for v in fixed[k]),
                tuple(int(v) for v in fixed[k + 1]),
                int(round(255 * values[k])),
                max(1, int(round(widths[k] * ss))),
                cv2.LINE_AA,
                4,
            )
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(F32) / 255


def _scratch(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """Thin curved bright or dark line, tapering at both ends."""
    size = scene.image.shape[0]
    c = np.array(_pick_on_surface(rng, scene))
    length = rng.uniform(0.10, 0.38) * size
    a = rng.uniform(0, math.pi)
    d, n = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    p0, p2 = c - d * length / 2, c + d * length / 2
    p1 = c + n * rng.uniform(-0.3, 0.3) * length
    t = np.linspace(0, 1, 48)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    taper = np.sin(np.pi * t.ravel()) ** 0.6
    values = taper * rng.uniform(0.6, 1.0, len(t)).clip(0, 1)
    widths = np.full(len(t), rng.uniform(0.6, 1.6) * max(1.0, size / 256))
    p = _draw_strokes(size, [(pts, widths, values)])[..., None]
    amp = rng.uniform(0.18, 0.45)
    if rng.random() < 0.6:
        return amp * p * (0.97 - scene.image)
    return -amp * p * scene.image


def _walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, steps: int, step: float
) -> np.ndarray:
    """Jagged persistent random walk (crack path) as an (n, 2) array of points."""
    pts = [start]
    for _ in range(steps):
        heading += rng.normal(0, 0.45)
        jitter = rng.normal(0, 0.25, 2) * step
        pts.append(pts[-1] + step * np.array([math.cos(heading), math.sin(heading)]) + jitter)
    return np.array(pts)


def _crack_start(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, float]:
    """Cracks often start at a bolt hole or the bore edge and run outwards."""
    pose = scene.pose
    if rng.random() < 0.5:
        hx, hy = _hole_centres(pose)[int(rng.integers(N_HOLES))]
        a = rng.uniform(0, 2 * math.pi)
        rad = (HOLE_R + CHAMFER_HOLE * 0.5) * pose.radius
        return np.array([hx + rad * math.cos(a), hy + rad * math.sin(a)]), a
    x, y = _pick_on_surface(rng, scene)
    return np.array([x, y]), float(rng.uniform(0, 2 * math.pi))


def _crack(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """Dark, jagged, branching hairline."""
    size = scene.image.shape[0]
    start, heading = _crack_start(rng, scene)
    step = max(1.0, 1.6 * size / 256)
    steps = int(rng.uniform(0.07, 0.2) * size / step)
    w0 = rng.uniform(0.8, 1.5) * max(1.0, size / 256)
    trunk = _walk(rng, start, heading, steps, step)
    strokes = [(trunk, np.linspace(w0, 0.5, len(trunk)), np.linspace(1, 0.6, len(trunk)))]
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(len(trunk) // 4, max(len(trunk) // 4 + 1, len(trunk) - 2)))
        sub_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
        branch = _walk(rng, trunk[k], sub_heading, max(3, steps // 3), step)
        strokes.append(
            (branch, np.linspace(w0 * 0.7, 0.4, len(branch)), np.linspace(0.85, 0.4, len(branch)))
        )
    p = _draw_strokes(size, strokes)[..., None]
    return -rng.uniform(0.45, 0.8) * p * scene.image


def _dent_height(rng: np.random.Generator, scene: Scene, rad: float) -> np.ndarray:
    """Height field of an irregular pit with a slightly raised rim (units of rad)."""
    size = scene.image.shape[0]
    cx, cy = _pick_on_surface(rng, scene)
    ys, xs = np.mgrid[0:size, 0:size].astype(F32) + F32(0.5)
    dx, dy = xs - F32(cx), ys - F32(cy)
    phi = np.arctan2(dy, dx)
    wobble = 1 + sum(
        rng.uniform(-0.12, 0.12) * np.cos(k * phi + rng.uniform(0, 6.3)) for k in (2, 3, 5)
    )
    d = np.hypot(dx, dy) / (F32(rad) * wobble)
    cup = np.clip(1 - d * d, 0, None) ** 2
    rim = rng.uniform(0.1, 0.3) * np.exp(-(((d - 1.15) / 0.25) ** 2))
    return (rim - cup).astype(F32)


def _dent(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """Small pit or blowhole: dark, shaded interior with a highlight on the rim."""
    size = scene.image.shape[0]
    rad = rng.uniform(1.8, 5.5) * max(1.0, size / 256) * (size / 256) ** 0.5
    rad = max(rad, 1.6)
    h = _dent_height(rng, scene, rad)
    gy, gx = np.gradient(h)
    slope = -(gx * scene.light[0] + gy * scene.light[1]) * rad  # normal ~ (-gx, -gy, 1)
    shade = rng.uniform(0.35, 0.7) * slope - rng.uniform(0.25, 0.6) * np.clip(-h, 0, 1)
    return (shade[..., None] * scene.image).astype(F32)


_STAIN_TINTS = {
    "rust": (1.00, 0.72, 0.45),
    "oil": (0.66, 0.64, 0.55),
    "water": (0.78, 0.80, 0.86),
}


def _stain(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """Irregular discoloured blob with a soft edge (rust, oil film or dried water mark)."""
    size = scene.image.shape[0]
    cx, cy = _pick_on_surface(rng, scene)
    rad = rng.uniform(0.035, 0.10) * size
    ys, xs = np.mgrid[0:size, 0:size].astype(F32) + F32(0.5)
    d = np.hypot((xs - cx) / rng.uniform(0.7, 1.3), ys - cy) / F32(rad)
    blob = (1 - d) + 0.45 * _noise_field(rng, size, max(4, int(size / rad * 1.5)))
    hard = (blob > 0).astype(F32)
    kind = list(_STAIN_TINTS)[int(rng.integers(len(_STAIN_TINTS)))]
    soft = cv2.GaussianBlur(hard, (0, 0), max(0.8, rad * rng.uniform(0.04, 0.12)))
    if kind == "water":  # dried water marks are darker at the rim
        soft = soft * 0.5 + 1.2 * np.clip(soft - cv2.GaussianBlur(hard, (0, 0), rad * 0.4), 0, 1)
    strength = rng.uniform(0.5, 0.95)
    tint = np.array(_STAIN_TINTS[kind], F32) * F32(rng.uniform(0.85, 1.0))
    return (strength * soft[..., None] * (scene.image * tint - scene.image)).astype(F32)


DEFECTS: dict[str, Callable[[np.random.Generator, Scene], np.ndarray]] = {
    "scratch": _scratch,
    "crack": _crack,
    "dent": _dent,
    "stain": _stain,
}


# --------------------------------------------------------------------------- samples


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _apply_defect(
    rng: np.random.Generator, scene: Scene, base: np.ndarray, defect: str
) -> tuple[np.ndarray, np.ndarray]:
    """Add a defect; mask = pixels whose value moved by at least MASK_THRESHOLD."""
    good = np.clip(base, 0, 1)
    for _ in range(20):
        delta = DEFECTS[defect](rng, scene) * scene.metal[..., None]
        bad = np.clip(base + delta, 0, 1)
        mask = np.abs(bad - good).max(axis=2) >= MASK_THRESHOLD
        if mask.sum() >= MIN_MASK_PIXELS:
            out = np.where(mask[..., None], bad, good)  # nothing outside the mask changes
            return out, mask
    raise RuntimeError(f"could not place a visible {defect} defect")


def render_sample(entropy: Sequence[int], size: int = 256, defect: str | None = None) -> Sample:
    """Render one image from a sub-seed; the same entropy gives the same part and pose
    with or without a defect, so ``defect=None`` is the defect's clean twin."""
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect type {defect!r}; known: {list(DEFECTS)}")
    scene_ss, defect_ss, noise_ss = np.random.SeedSequence(list(entropy)).spawn(3)
    scene = render_scene(np.random.default_rng(scene_ss), size)
    noise = np.random.default_rng(noise_ss).normal(0, 0.006, scene.image.shape).astype(F32)
    base = scene.image + noise
    mask = None
    if defect is not None:
        base, m = _apply_defect(np.random.default_rng(defect_ss), scene, base, defect)
        mask = m.astype(np.uint8) * 255
    return Sample(image=_to_uint8(base), mask=mask, part=scene.metal)


# --------------------------------------------------------------------------- dataset


def _write(path: Path, array: np.ndarray, params: list[int]) -> None:
    """Encode in memory and write bytes (deterministic, no partial files on error)."""
    ok, buf = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def _save(out: Path, sample: Sample, category: str, index: int) -> None:
    """Write a sample to its place in the dataset layout."""
    stem = f"{category}_{index:03d}"
    bgr = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if sample.mask is None:
        _write(out / "good" / f"{stem}.jpg", bgr, jpeg)
        return
    _write(out / "defect" / category / f"{stem}.jpg", bgr, jpeg)
    _write(out / "masks" / category / f"{stem}.png", sample.mask, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _prepare_dirs(out: Path, types: Sequence[str]) -> None:
    """Create the layout and drop stale generated files from earlier, larger runs."""
    dirs = [(out / "good", "good_*.jpg")]
    for t in types:
        dirs += [(out / "defect" / t, f"{t}_*.jpg"), (out / "masks" / t, f"{t}_*.png")]
    for d, pattern in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(pattern):
            stale.unlink()


def image_entropy(seed: int, category: str, index: int) -> tuple[int, int, int]:
    """Sub-seed of image ``index`` of ``category`` ("good" or a defect type).

    Independent of the other counts, so e.g. ``good_003`` is the same image whatever
    ``n_per_type`` is; pass it to :func:`render_sample` to re-render any dataset image.
    """
    cat = 0 if category == "good" else 1 + DEFECT_TYPES.index(category)
    return (seed, cat, index)


def _jobs(
    seed: int, n_good: int, n_per_type: int, types: Sequence[str]
) -> list[tuple[str, int, tuple[int, ...], str | None]]:
    """(category, index, entropy, defect) for every image."""
    jobs: list[tuple[str, int, tuple[int, ...], str | None]] = [
        ("good", i, image_entropy(seed, "good", i), None) for i in range(n_good)
    ]
    for t in types:
        jobs += [(t, i, image_entropy(seed, t, i), t) for i in range(n_per_type)]
    return jobs


def _readme(
    out_name: str, seed: int, n_good: int, n_per_type: int, size: int, types: Sequence[str]
) -> str:
    cmd = (
        f"python -m training.synth {out_name} --good {n_good} --per-type {n_per_type} "
        f"--size {size} --seed {seed}"
    )
    rows = "\n".join(f"- `{t}`: {n_per_type} images" for t in types)
    return f"""# Synthetic sample images

Generated by `training/synth.py` (deterministic: same arguments, byte-identical files):

    {cmd}

A turned steel flange (bore, raised hub, six bolt holes) on a dark mat, {size}x{size} px
RGB, with small pose, lighting and exposure variation. {n_good} good images and, per
defect type:

{rows}

Layout:

    good/good_000.jpg                 defect-free (JPEG q{JPEG_QUALITY})
    defect/<type>/<type>_000.jpg      one defect each (JPEG q{JPEG_QUALITY})
    masks/<type>/<type>_000.png       255 = defect, 0 = fine; same stem and size as its image

Masks cover exactly the pixels the defect changed (before JPEG compression). These
images are synthetic: good for tests, demos and smoke-training, not a substitute for
photos from the real station.
"""


def generate_dataset(
    out_dir: str | Path,
    n_good: int = 48,
    n_per_type: int = 12,
    size: int = 256,
    seed: int = 0,
    types: Sequence[str] = DEFECT_TYPES,
    progress: bool = False,
) -> dict:
    """Write a synthetic dataset to ``out_dir`` in the project layout; return a summary.

    The summary has ``out_dir``, ``seed``, ``size``, ``good`` (count), ``defect``
    (type -> count) and ``files`` (images + masks written).
    """
    unknown = [t for t in types if t not in DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect types {unknown}; known: {list(DEFECTS)}")
    if size < 48:
        raise ValueError("size must be at least 48 px")
    out = Path(out_dir)
    _prepare_dirs(out, types)
    jobs = _jobs(seed, n_good, n_per_type, types)
    for category, index, entropy, defect in tqdm(
        jobs, desc="synth", unit="img", disable=not progress
    ):
        _save(out, render_sample(entropy, size, defect), category, index)
    (out / "README.md").write_text(_readme(out.name, seed, n_good, n_per_type, size, types))
    log.info("wrote %d images to %s", len(jobs), out)
    return {
        "out_dir": str(out),
        "seed": seed,
        "size": size,
        "good": n_good,
        "defect": {t: n_per_type for t in types},
        "files": n_good + 2 * n_per_type * len(types),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m training.synth", description=__doc__.split("\n")[0]
    )
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--good", type=int, default=48, help="number of good images")
    ap.add_argument("--per-type", type=int, default=12, help="defective images per type")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--types", default=",".join(DEFECT_TYPES), help="comma-separated defect types")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    s = generate_dataset(
        args.out_dir, args.good, args.per_type, args.size, args.seed, types, progress=True
    )
    print(
        f"{s['good']} good + {sum(s['defect'].values())} defective images "
        f"({', '.join(s['defect'])}) at {s['size']} px, seed {s['seed']} -> {s['out_dir']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
