"""`qc train --mode supervised`: data -> split -> fit -> threshold -> ONNX package."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from training import data as ds
from training.calibration import ScoreScale, select_threshold
from training.config import TrainConfig, TrainResult, base_info, environment, pick_device
from training.export import export_onnx
from training.loops import fit, predict, ranking_metrics
from training.supervised import SupervisedConfig, SupervisedExport, SupervisedNet

log = logging.getLogger(__name__)

PARITY_IMAGES = 8
MIN_EPOCH_BATCHES = 16  # small datasets: an "epoch" is at least this many optimizer steps


def fit_supervised(config: TrainConfig) -> TrainResult:
    """Train good-vs-defect (and defect type) on a dataset folder and export the ONNX package."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    dataset = ds.scan(config.data, strict=config.strict)
    ds.require_enough(dataset, need_defects=True)
    groups = ds.group_keys(dataset.samples, config.group_by, config.group_size)
    train_idx, val_idx = ds.split(dataset, config.val_fraction, config.seed, groups)
    train = [dataset.samples[i] for i in train_idx]
    val = [dataset.samples[i] for i in val_idx]
    _check_split(train, val)
    log.info("training on %d images, validating on %d (%s)", len(train), len(val), dataset.count())

    store = ds.ImageStore()
    prep = config.preprocessing
    types = dataset.defect_types if len(dataset.defect_types) >= 2 else []
    train_set = ds.TorchDataset(train, prep, types, store, ds.Augment(), seed=config.seed)
    val_set = ds.TorchDataset(val, prep, types, store)
    sampler = _balanced(train, max(len(train), MIN_EPOCH_BATCHES * config.batch_size))
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                              drop_last=True)
    val_loader = DataLoader(val_set, batch_size=config.batch_size)

    uses_masks = any(s.mask_path is not None for s in train if s.label == 1)
    net = SupervisedNet(SupervisedConfig(n_types=len(types))).to(device)

    def next_epoch(epoch: int) -> None:
        train_set.epoch = epoch

    outcome = fit(net, train_loader, val_loader, device, config.epochs, config.patience,
                  config.lr, on_epoch=next_epoch, time_budget_s=config.max_minutes * 60)
    net = outcome.net.cpu()
    probs, labels, _ = predict(net, val_loader, torch.device("cpu"))
    threshold = select_threshold(probs, labels, config.target_recall)
    scale = ScoreScale.fit(threshold.value, probs, bounded=True)
    train_seconds = time.perf_counter() - start

    metrics = {**ranking_metrics(probs, labels), "recall": threshold.recall,
               "false_reject_rate": threshold.false_reject_rate, "threshold": threshold.to_dict(),
               "split": "validation", "n_good": threshold.n_good, "n_defect": threshold.n_defect}
    info = base_info(
        config, ds.fingerprint(dataset.samples, dataset.root),
        threshold=threshold.value, score_scale=scale.to_dict(),
        defect_types=list(dataset.defect_types), metrics=metrics,
        training={"config": config.to_dict(), "n_train": len(train), "n_val": len(val),
                  "counts": dataset.count(), "best_epoch": outcome.best_epoch,
                  "epochs_run": len(outcome.history), "seconds": round(train_seconds, 1),
                  "uses_masks": uses_masks, "map": "segmentation" if uses_masks else "cam",
                  "environment": environment()},
        image_stats=ds.image_stats([s for s in train if s.label == 0], store),
    )
    check = torch.from_numpy(np.stack([val_set[i][0].numpy() for i in range(
        min(PARITY_IMAGES, len(val_set)))]))
    result = export_onnx(SupervisedExport(net, scale, uses_masks), info, config.out, check)
    seconds = time.perf_counter() - start
    log.info("trained and exported in %.1f s: %s", seconds, result.path)
    return TrainResult(result.path, info, seconds, outcome.history)


def _check_split(train: list[ds.Sample], val: list[ds.Sample]) -> None:
    for name, part in (("training", train), ("validation", val)):
        labels = {s.label for s in part}
        if labels != {0, 1}:
            raise ds.DatasetError(
                f"the {name} split has no {'defect' if 1 not in labels else 'good'} images; "
                "add images or lower --val-fraction / loosen --group-by"
            )


def _balanced(samples: list[ds.Sample], n: int) -> WeightedRandomSampler:
    """Draw good and defect images equally often (defects are usually rare)."""
    labels = np.array([s.label for s in samples])
    weights = np.where(labels == 1, 0.5 / max((labels == 1).sum(), 1),
                       0.5 / max((labels == 0).sum(), 1))
    generator = torch.Generator().manual_seed(0)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), n,
                                 replacement=True, generator=generator)
