"""The supervised loops: trunk features once, heads trained and scored on the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import data as ds
from training.loops import Features, extract_features, predict, ranking_metrics, train_heads
from training.supervised import SupervisedConfig, SupervisedNet


def _toy_features(n=40, h=4, w=4, seed=0) -> Features:
    """Defects light up one channel of the stride-16 tap where their mask is."""
    g = torch.Generator().manual_seed(seed)
    label = (torch.arange(n) % 2).float()
    tap = torch.randn(2, n, 112, h, w, generator=g) * 0.1
    mask = torch.zeros(2, n, h, w)
    for i in range(1, n, 2):
        r, c = i % h, (i // 2) % w
        tap[:, i, 7, r, c] += 3.0
        mask[:, i, r, c] = 1
    pooled = torch.randn(2, n, 1280, generator=g) * 0.1
    return Features(tap.half(), pooled.half(), mask, label, torch.full((n,), -1))


def test_heads_learn_from_cached_features_and_generalise():
    feats = _toy_features()
    train, held = np.arange(0, 30), np.arange(30, 40)
    heads = train_heads(SupervisedConfig(), feats, train, epochs=30, lr=3e-3, batch_size=8,
                        seed=0, device="cpu")
    probs = predict(heads, feats, held, "cpu")
    assert probs.shape == (10,) and ranking_metrics(probs, feats.label[held].numpy())[
        "auroc"] == 1.0


def test_untrained_heads_do_not_separate():
    """The test above can fail: with no epochs, the heads rank at chance."""
    feats = _toy_features(seed=1)
    heads = train_heads(SupervisedConfig(), feats, np.arange(30), epochs=0, lr=1e-3,
                        batch_size=8, seed=0, device="cpu")
    auroc = ranking_metrics(predict(heads, feats, np.arange(40), "cpu"),
                            feats.label.numpy())["auroc"]
    assert auroc < 0.9


def test_extract_features_views_masks_and_budget(tiny_dataset):
    samples = ds.scan(tiny_dataset).samples
    prep = ds.Preprocessing(size=(64, 32), resize="stretch")
    store = ds.ImageStore()
    views = [ds.TorchDataset(samples, prep, ["scratch", "stain"], store)]
    aug = ds.TorchDataset(samples, prep, ["scratch", "stain"], store, ds.Augment())
    aug.epoch = 1
    views.append(aug)
    net = SupervisedNet(SupervisedConfig(n_types=2))
    feats = extract_features(net, views, "cpu", batch_size=8)
    assert feats.tap.shape == (2, 28, 112, 2, 4) and feats.pooled.shape == (2, 28, 1280)
    assert feats.mask.shape == (2, 28, 2, 4)
    good = feats.label == 0
    assert (feats.mask[:, good] == 0).all()  # good images: a known, empty mask
    assert (feats.mask[:, ~good].amax(dim=(2, 3)) == 1).all()  # every defect's mask is seen
    assert not torch.equal(feats.tap[0], feats.tap[1])  # the augmented view differs
    assert set(feats.type_idx[~good].tolist()) == {0, 1}
    # a budget already spent keeps the plain view only
    assert extract_features(net, views, "cpu", 8, max_seconds=1e-9).n_views == 1


def test_kfold_holds_out_every_image_once_and_keeps_parts_together(tiny_dataset):
    dataset = ds.scan(tiny_dataset)
    groups = ds.group_keys(dataset.samples, group_size=2)
    folds = list(ds.kfold(dataset, 5, 0, groups))
    held = np.concatenate([h for _, h in folds])
    assert len(folds) == 5 and sorted(held) == list(range(len(dataset.samples)))
    for keep, out in folds:
        assert not {groups[i] for i in keep} & {groups[i] for i in out}


@pytest.mark.parametrize("k", [2, 3])
def test_kfold_uses_fewer_folds_with_few_parts(tiny_dataset, k):
    dataset = ds.scan(tiny_dataset)
    groups = [str(i % k) for i in range(len(dataset.samples))]
    assert len(list(ds.kfold(dataset, 5, 0, groups))) == k
