"""Tests for the synthetic product-image generator (training.synth)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.synth import (
    DEFECT_TYPES,
    generate_dataset,
    image_entropy,
    main,
    render_sample,
)

SEED, N_GOOD, N_PER_TYPE, SIZE = 7, 3, 2, 64


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "ds"
    summary = generate_dataset(out, n_good=N_GOOD, n_per_type=N_PER_TYPE, size=SIZE, seed=SEED)
    return out, summary


def test_same_seed_gives_identical_bytes(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    first, _ = dataset
    again = tmp_path / "ds"  # same directory name, so README.md matches too
    generate_dataset(again, n_good=N_GOOD, n_per_type=N_PER_TYPE, size=SIZE, seed=SEED)
    a, b = _files(first), _files(again)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)


def test_other_seed_gives_other_images(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    first, _ = dataset
    generate_dataset(tmp_path, n_good=1, n_per_type=0, size=SIZE, seed=SEED + 1)
    assert (tmp_path / "good/good_000.jpg").read_bytes() != (
        first / "good/good_000.jpg"
    ).read_bytes()


def test_layout_counts_and_summary(dataset: tuple[Path, dict]) -> None:
    out, summary = dataset
    assert summary["good"] == N_GOOD
    assert summary["defect"] == {t: N_PER_TYPE for t in DEFECT_TYPES}
    assert summary["files"] == N_GOOD + 2 * N_PER_TYPE * len(DEFECT_TYPES)
    assert sorted(p.name for p in (out / "good").iterdir()) == [
        f"good_{i:03d}.jpg" for i in range(N_GOOD)
    ]
    for t in DEFECT_TYPES:
        images = sorted(p.stem for p in (out / "defect" / t).glob("*.jpg"))
        masks = sorted(p.stem for p in (out / "masks" / t).glob("*.png"))
        assert images == masks == [f"{t}_{i:03d}" for i in range(N_PER_TYPE)]
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(DEFECT_TYPES)
    readme = (out / "README.md").read_text()
    assert f"--seed {SEED}" in readme and "masks/<type>/<type>_000.png" in readme


def test_good_images_have_no_mask(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    assert not list((out / "masks").rglob("good*"))
    assert not (out / "masks" / "good").exists()


def test_images_are_colour_and_masks_binary_nonempty(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    for jpg in (out / "good").glob("*.jpg"):
        img = cv2.imread(str(jpg), cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE, 3)
    for t in DEFECT_TYPES:
        for jpg in (out / "defect" / t).glob("*.jpg"):
            img = cv2.imread(str(jpg), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(out / "masks" / t / f"{jpg.stem}.png"), cv2.IMREAD_UNCHANGED)
            assert img.shape == (SIZE, SIZE, 3)
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 255}
            assert 0 < (mask > 0).mean() < 0.2  # a defect, not the whole frame


@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_defect_alters_exactly_its_mask_on_the_part(defect: str) -> None:
    for i in range(3):
        entropy = image_entropy(SEED, defect, i)
        clean = render_sample(entropy, 96).image.astype(int)
        bad = render_sample(entropy, 96, defect)
        assert bad.mask is not None
        inside = bad.mask > 0
        diff = np.abs(bad.image.astype(int) - clean).max(axis=2)
        assert inside.any()
        assert not diff[~inside].any()  # nothing outside the mask changed
        assert diff[inside].min() >= 1 and diff[inside].mean() > 5
        assert diff[inside].max() >= 15  # visible somewhere
        assert not (inside & ~bad.part).any()  # the defect lies on the part


def test_saved_defect_differs_from_clean_twin_inside_mask(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    for t in DEFECT_TYPES:
        bgr = cv2.imread(str(out / "defect" / t / f"{t}_000.jpg"))
        mask = cv2.imread(str(out / "masks" / t / f"{t}_000.png"), cv2.IMREAD_GRAYSCALE) > 0
        clean = render_sample(image_entropy(SEED, t, 0), SIZE).image
        diff = np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - clean).max(axis=2)
        assert diff[mask].mean() > 2 * diff[~mask].mean() + 3, t


def test_good_render_has_no_mask_and_is_deterministic() -> None:
    a, b = render_sample((1, 0, 0), 64), render_sample((1, 0, 0), 64)
    assert a.mask is None
    assert np.array_equal(a.image, b.image)
    assert a.part.any() and not a.part.all()


def test_unknown_defect_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, n_good=0, n_per_type=1, size=64, types=("smudge",))
    with pytest.raises(ValueError):
        render_sample((0, 0, 0), 64, "smudge")


def test_rerun_removes_stale_images(tmp_path: Path) -> None:
    generate_dataset(tmp_path, n_good=3, n_per_type=1, size=64, types=("dent",))
    generate_dataset(tmp_path, n_good=1, n_per_type=1, size=64, types=("dent",))
    assert [p.name for p in (tmp_path / "good").iterdir()] == ["good_000.jpg"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(tmp_path), "--good", "2", "--per-type", "1", "--size", "64", "--seed", "3"])
    assert rc == 0
    assert len(list((tmp_path / "good").glob("*.jpg"))) == 2
    assert len(list((tmp_path / "masks").rglob("*.png"))) == len(DEFECT_TYPES)
    assert "2 good + 4 defective" in capsys.readouterr().out
