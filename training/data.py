"""Datasets in qc's folder layout, their validation, splits, fingerprint and augmentation.

Layout (anomalib's Folder / torchvision's ImageFolder convention):
    DATA/good/*                      defect-free images
    DATA/defect/<type>/*             defective images, one folder per defect type
    DATA/masks/<type>/<stem>.png     optional pixel masks (255 = defect), same stem as the image
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from qc.imaging import (
    ImageError,
    Preprocessing,
    is_image_path,
    preprocess,
    quality_stats,
    read_image,
    read_mask,
    resize,
)

log = logging.getLogger(__name__)

MIN_GOOD = 10
MIN_DEFECT = 5
AUTO_SHORT_SIDE = 224  # the resolution the backbone was trained at
AUTO_MAX_SIDE = 512  # the long side's cap: latency grows with the pixels
AUTO_STEP = 32  # the backbone's total stride: sides stay multiples of it
AUTO_PROBE = 16  # images whose shape decides the aspect ratio
# Why 2 GB: decoded images are cached for all epochs when they fit; beyond that, re-read each time.
CACHE_BYTES = 2 * 1024**3


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message says what to fix."""


@dataclass
class Sample:
    """One image of a dataset."""

    path: Path
    label: int  # 0 good, 1 defect
    defect_type: str | None = None
    mask_path: Path | None = None


@dataclass
class Dataset:
    """The images found under a dataset root, and what was skipped and why."""

    root: Path
    samples: list[Sample]
    defect_types: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=int)

    def count(self) -> dict[str, int]:
        """Image counts: good, defect and per defect type."""
        out = {"good": int((self.labels == 0).sum()), "defect": int((self.labels == 1).sum())}
        for t in self.defect_types:
            out[f"defect/{t}"] = sum(s.defect_type == t for s in self.samples)
        return out


def scan(root: str | Path, strict: bool = False, check: bool = True) -> Dataset:
    """Find the images of a dataset folder; with check, decode each once to find bad files.

    Unreadable files are skipped with a warning, or raise DatasetError with strict=True.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    good_dir, defect_dir = root / "good", root / "defect"
    if not good_dir.is_dir():
        raise DatasetError(f"{root}: missing good/ folder (layout: good/, defect/<type>/, masks/)")
    samples, skipped = [], []
    for path in _files(good_dir, skipped):
        samples.append(Sample(path, 0))
    types = []
    if defect_dir.is_dir():
        types = sorted(p.name for p in defect_dir.iterdir() if p.is_dir())
    for t in types:
        for path in _files(defect_dir / t, skipped):
            mask = root / "masks" / t / f"{path.stem}.png"
            samples.append(Sample(path, 1, t, mask if mask.is_file() else None))
    dataset = Dataset(root, samples, types, skipped)
    if check:
        _check_readable(dataset, strict)
    for path, reason in dataset.skipped:
        log.warning("skipped %s: %s", path, reason)
    return dataset


def _files(folder: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        if is_image_path(path):
            out.append(path)
        else:
            skipped.append((path, "not an image file type (png, jpg, bmp, tif)"))
    return out


def _check_readable(dataset: Dataset, strict: bool) -> None:
    keep = []
    for sample in tqdm(dataset.samples, desc="checking images", unit="img", leave=False):
        try:
            read_image(sample.path)
        except ImageError as exc:
            if strict:
                raise DatasetError(f"unreadable image (--strict): {exc}") from exc
            dataset.skipped.append((sample.path, str(exc)))
            continue
        keep.append(sample)
    dataset.samples = keep


def require_enough(dataset: Dataset, need_defects: bool) -> None:
    """Raise DatasetError saying exactly what is missing for training."""
    counts = dataset.count()
    problems = []
    if counts["good"] < MIN_GOOD:
        problems.append(f"{counts['good']} good images in good/ (need at least {MIN_GOOD})")
    if need_defects and counts["defect"] < MIN_DEFECT:
        problems.append(
            f"{counts['defect']} defect images in defect/<type>/ (need at least {MIN_DEFECT}; "
            "with none, use --mode anomaly)"
        )
    if problems:
        raise DatasetError(f"{dataset.root}: too few images to train: " + "; ".join(problems))


def group_keys(samples: list[Sample], group_by: str | None = None, group_size: int | None = None):
    """A group key per sample so that images of one physical part stay on one side of a split.

    group_by: a regex searched in the file stem (its first group, or the whole match, is the key);
    group_size: consecutive numbering, key = first number in the stem // group_size.
    Without either, every image is its own group.
    """
    keys = []
    pattern = re.compile(group_by) if group_by else None
    for s in samples:
        stem = s.path.stem
        if pattern:
            m = pattern.search(stem)
            keys.append(m.group(1) if m and m.groups() else (m.group(0) if m else stem))
        elif group_size:
            num = re.search(r"\d+", stem)
            keys.append(str(int(num.group()) // group_size) if num else stem)
        else:
            keys.append(f"{s.label}/{s.defect_type}/{stem}")
    return keys


def split(dataset: Dataset, fraction: float, seed: int, groups: list[str]):
    """Stratified (by good/defect type), group-aware split: (keep indices, held-out indices)."""
    if not 0 < fraction < 1:
        raise ValueError("the held-out fraction must be between 0 and 1")
    return next(kfold(dataset, max(2, round(1 / fraction)), seed, groups))


def kfold(dataset: Dataset, k: int, seed: int, groups: list[str]):
    """Stratified, group-aware k folds: yields (keep indices, held-out indices) k times.

    Fewer folds when there are fewer groups; every image is held out exactly once.
    """
    strata = [0 if s.defect_type is None else 1 + dataset.defect_types.index(s.defect_type)
              for s in dataset.samples]
    n_groups = len(set(groups))
    if n_groups < 2:
        raise DatasetError("all images fall into one group: loosen --group-by / --group-size")
    folds = StratifiedGroupKFold(n_splits=min(k, n_groups), shuffle=True, random_state=seed)
    for keep, held in folds.split(np.zeros(len(strata)), strata, groups):
        yield np.sort(keep), np.sort(held)


def auto_size(samples: list[Sample]) -> tuple[int, int]:
    """Input size (W, H) that keeps the images' median aspect ratio: the short side 224 px, the
    long side rounded to a multiple of 32 and capped at 512 px. Square images give 224x224."""
    shapes = [read_image(s.path).shape[:2] for s in samples[:: max(1, len(samples) // AUTO_PROBE)]
              [:AUTO_PROBE]]
    if not shapes:
        return AUTO_SHORT_SIDE, AUTO_SHORT_SIDE
    ratio = float(np.median([h / w for h, w in shapes]))  # > 1: portrait
    stretch = max(ratio, 1 / ratio)
    long = min(AUTO_MAX_SIDE, max(AUTO_SHORT_SIDE,
                                  round(AUTO_SHORT_SIDE * stretch / AUTO_STEP) * AUTO_STEP))
    return (AUTO_SHORT_SIDE, long) if ratio > 1 else (long, AUTO_SHORT_SIDE)


def fingerprint(samples: list[Sample], root: Path) -> str:
    """SHA-256 over the sorted relative names and bytes of the images (and masks) used."""
    digest = hashlib.sha256()
    paths = sorted({s.path for s in samples} | {s.mask_path for s in samples if s.mask_path})
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


class ImageStore:
    """Decodes images once and keeps them while they fit in the cache budget."""

    def __init__(self, budget: int = CACHE_BYTES):
        self.budget, self.used, self.cache = budget, 0, {}

    def get(self, path: Path) -> np.ndarray:
        if path in self.cache:
            return self.cache[path]
        image = read_image(path)
        if self.used + image.nbytes <= self.budget:
            self.cache[path] = image
            self.used += image.nbytes
        return image


def image_stats(samples: list[Sample], store: ImageStore) -> dict[str, dict[str, float]]:
    """Mean and std of qc.imaging.quality_stats over images: the station guard's reference."""
    rows = [quality_stats(store.get(s.path)) for s in samples]
    if not rows:
        return {}
    return {k: {"mean": float(np.mean([r[k] for r in rows])),
                "std": float(np.std([r[k] for r in rows]))} for k in rows[0]}


@dataclass
class Augment:
    """Inspection-safe augmentation on uint8 images (applied before qc.imaging.preprocess).

    Geometry stays mild (defects keep their look); photometric jitter mimics lighting drift.
    """

    flip: bool = True
    rotate_deg: float = 10.0
    shift: float = 0.05
    scale: float = 0.08
    brightness: float = 0.15
    contrast: float = 0.15
    noise: float = 4.0

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator):
        if self.flip and rng.random() < 0.5:
            image, mask = image[:, ::-1], None if mask is None else mask[:, ::-1]
        if self.flip and rng.random() < 0.5:
            image, mask = image[::-1], None if mask is None else mask[::-1]
        h, w = image.shape[:2]
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
        zoom = 1 + rng.uniform(-self.scale, self.scale)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
        m[:, 2] += rng.uniform(-self.shift, self.shift, 2) * (w, h)
        image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h),
                               borderMode=cv2.BORDER_REFLECT_101)
        if mask is not None:
            mask = cv2.warpAffine(np.ascontiguousarray(mask), m, (w, h), flags=cv2.INTER_NEAREST)
        gain = 1 + rng.uniform(-self.contrast, self.contrast)
        bias = rng.uniform(-self.brightness, self.brightness) * 255
        out = (image.astype(np.float32) - 127.5) * gain + 127.5 + bias
        out += rng.normal(0, self.noise, out.shape).astype(np.float32) * (rng.random() < 0.5)
        return np.clip(out, 0, 255).astype(np.uint8), mask


class TorchDataset(torch.utils.data.Dataset):
    """Samples as tensors: image (3, H, W) 0..255, label, type index, mask (H, W) or -1s."""

    def __init__(self, samples, prep: Preprocessing, types: list[str], store: ImageStore,
                 augment: Augment | None = None, seed: int = 0):
        self.samples, self.prep, self.types, self.store = samples, prep, types, store
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        image = self.store.get(s.path)
        mask = None
        if s.label == 0:
            mask = np.zeros(image.shape[:2], np.uint8)
        elif s.mask_path is not None:
            mask = read_mask(s.mask_path, image.shape[:2]).astype(np.uint8) * 255
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            image, mask = self.augment(image, mask, rng)
        x = torch.from_numpy(preprocess(np.ascontiguousarray(image), self.prep))
        if mask is None:
            m = torch.full(self.prep.size[::-1], -1.0)
        else:
            m = torch.from_numpy((resize(np.ascontiguousarray(mask), self.prep, pad=0) > 127)
                                 .astype(np.float32))
        t = self.types.index(s.defect_type) if s.defect_type in self.types else -1
        return x, torch.tensor(float(s.label)), torch.tensor(t), m


def write_split(dataset: Dataset, out: Path, fraction: float, seed: int, groups: list[str],
                copy: bool = False) -> dict[str, dict[str, int]]:
    """Write OUT/train and OUT/test in the dataset layout (symlinks, or copies with copy=True).

    The test part is held out by group and stratified, for an honest `qc evaluate` later.
    """
    import shutil

    out = Path(out)
    train_idx, test_idx = split(dataset, fraction, seed, groups)
    counts = {}
    for part, idx in (("train", train_idx), ("test", test_idx)):
        for i in idx:
            s = dataset.samples[i]
            pairs = [(s.path, out / part / s.path.relative_to(dataset.root))]
            if s.mask_path is not None:
                pairs.append((s.mask_path, out / part / s.mask_path.relative_to(dataset.root)))
            for src, dst in pairs:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.unlink(missing_ok=True)
                if copy:
                    shutil.copy2(src, dst)
                else:
                    dst.symlink_to(src.resolve())
        counts[part] = Dataset(dataset.root, [dataset.samples[i] for i in idx],
                               dataset.defect_types).count()
    return counts
