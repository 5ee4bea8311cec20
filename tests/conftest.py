"""Shared fixtures: tiny generated datasets and models, made on the fly."""

from __future__ import annotations

import pytest

from tests.support.tiny_model import make_tiny_model


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small synthetic dataset (64 px flanges): 16 good, 6 scratch, 6 stain, with masks."""
    from training.synth import generate_dataset

    root = tmp_path_factory.mktemp("data") / "flange"
    generate_dataset(root, n_good=16, n_per_type=6, size=64, seed=1, types=("scratch", "stain"))
    return root


@pytest.fixture(scope="session")
def trained_model(tiny_dataset, tmp_path_factory):
    """A supervised model trained briefly on tiny_dataset (structure, not accuracy, is tested)."""
    from training.config import TrainConfig
    from training.supervised_fit import fit_supervised

    out = tmp_path_factory.mktemp("model") / "flange.onnx"
    config = TrainConfig(data=tiny_dataset, out=out, size=(64, 64), epochs=2, views=2,
                         batch_size=8, threads=2)
    return fit_supervised(config)


@pytest.fixture
def tiny_model(tmp_path):
    """A torch-free qc model package whose score is the image brightness."""
    return make_tiny_model(tmp_path / "tiny.onnx")
