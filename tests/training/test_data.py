"""Dataset layout, validation, splits, fingerprint and augmentation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from qc.imaging import Preprocessing, preprocess, read_image
from training import data as ds


def test_scan_finds_layout(tiny_dataset):
    d = ds.scan(tiny_dataset)
    assert d.defect_types == ["scratch", "stain"]
    assert d.count() == {"good": 16, "defect": 12, "defect/scratch": 6, "defect/stain": 6}
    assert all(s.mask_path is not None for s in d.samples if s.label == 1)
    assert not d.skipped


def test_unreadable_and_foreign_files(tiny_dataset, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    (root / "good" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (root / "good" / "notes.txt").write_text("hello")
    d = ds.scan(root)
    reasons = {p.name: r for p, r in d.skipped}
    assert "not a readable image" in reasons["broken.jpg"] or "truncated" in reasons["broken.jpg"]
    assert "not an image file type" in reasons["notes.txt"]
    assert d.count()["good"] == 16
    with pytest.raises(ds.DatasetError, match="--strict"):
        ds.scan(root, strict=True)


def test_missing_good_folder_and_too_few_images(tmp_path):
    with pytest.raises(ds.DatasetError, match="missing good/"):
        ds.scan(tmp_path)
    (tmp_path / "good").mkdir()
    d = ds.scan(tmp_path)
    with pytest.raises(ds.DatasetError, match=r"0 good images.*0 defect images"):
        ds.require_enough(d, need_defects=True)


def test_group_keys():
    samples = [ds.Sample(ds.Path(f"good/{n:03d}.jpg"), 0) for n in (0, 7, 8, 15, 16)]
    assert ds.group_keys(samples, group_size=8) == ["0", "0", "1", "1", "2"]
    named = [ds.Sample(ds.Path(f"good/part{p}_view{v}.png"), 0) for p in (1, 2) for v in (1, 2)]
    assert ds.group_keys(named, group_by=r"part(\d+)") == ["1", "1", "2", "2"]


def test_split_keeps_groups_together_and_stratifies(tiny_dataset):
    d = ds.scan(tiny_dataset, check=False)
    groups = [str(i // 2) + (s.defect_type or "") for i, s in enumerate(d.samples)]
    keep, held = ds.split(d, 0.34, 0, groups)
    assert not {groups[i] for i in keep} & {groups[i] for i in held}
    assert len(keep) + len(held) == len(d.samples)
    held_types = {d.samples[i].defect_type for i in held}
    assert held_types == {None, "scratch", "stain"}


def test_fingerprint_changes_with_content(tiny_dataset, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    d = ds.scan(root, check=False)
    first = ds.fingerprint(d.samples, root)
    assert first == ds.fingerprint(d.samples, root)
    path = d.samples[0].path
    path.write_bytes(path.read_bytes() + b"\0")
    assert ds.fingerprint(d.samples, root) != first


def test_training_tensor_equals_serving_preprocessing(tiny_dataset):
    """Train/serve skew guard: without augmentation the training input IS the serving input."""
    d = ds.scan(tiny_dataset, check=False)
    prep = Preprocessing((48, 40), "letterbox")
    dataset = ds.TorchDataset(d.samples, prep, d.defect_types, ds.ImageStore())
    for i in (0, len(d.samples) - 1):
        x, label, type_idx, mask = dataset[i]
        served = preprocess(read_image(d.samples[i].path), prep)
        assert torch.equal(x, torch.from_numpy(served))
        assert mask.shape == (40, 48)
    assert label == 1 and type_idx == 1 and mask.max() == 1


def test_augmentation_is_deterministic_and_keeps_mask_aligned():
    image = np.zeros((64, 64, 3), np.uint8)
    image[20:30, 20:30] = 255
    mask = (image[..., 0] > 0).astype(np.uint8) * 255
    aug = ds.Augment(brightness=0, contrast=0, noise=0)
    a1, m1 = aug(image, mask, np.random.default_rng(3))
    a2, m2 = aug(image, mask, np.random.default_rng(3))
    assert np.array_equal(a1, a2) and np.array_equal(m1, m2)
    bright = a1[..., 0] > 127
    assert (bright & (m1 > 127)).sum() / max(bright.sum(), 1) > 0.9


@pytest.mark.parametrize(("hw", "expected"), [
    ((630, 250), (224, 512)),  # KolektorSDD-like portrait: long side capped at 512
    ((230, 565), (512, 224)),  # BSData-like landscape
    ((300, 300), (224, 224)),  # square cells
    ((240, 320), (288, 224)),  # 4:3 -> 298.7, rounded to a multiple of 32
])
def test_auto_size_follows_aspect_ratio(tmp_path, hw, expected):
    import cv2

    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), np.full((*hw, 3), 100, np.uint8))
        paths.append(ds.Sample(p, 0))
    assert ds.auto_size(paths) == expected


def test_config_with_size_keeps_an_explicit_size(tiny_dataset):
    from training.config import TrainConfig

    samples = ds.scan(tiny_dataset).samples
    fixed = TrainConfig(data=tiny_dataset, out="m", size=(64, 32)).with_size(samples)
    assert fixed.size == (64, 32)
    auto = TrainConfig(data=tiny_dataset, out="m").with_size(samples)
    assert auto.size == ds.auto_size(samples) and auto.preprocessing.size == auto.size
