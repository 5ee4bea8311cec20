"""`qc train --mode supervised`: data -> trunk features -> k-fold heads -> threshold -> ONNX.

The threshold comes from out-of-fold scores: every training image is scored once by heads that
did not see its part, so the operating point (recall, false rejects, with intervals) rests on
all images instead of one small validation split. The exported heads are then trained on all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from training import data as ds
from training.calibration import ScoreScale, select_threshold, trade_off
from training.config import (
    TrainConfig,
    TrainResult,
    ValidationScores,
    base_info,
    environment,
    pick_device,
)
from training.export import export_onnx
from training.loops import extract_features, predict, ranking_metrics, train_heads
from training.supervised import SupervisedConfig, SupervisedExport, SupervisedNet

log = logging.getLogger(__name__)

PARITY_IMAGES = 8
FEATURE_BUDGET = 0.6  # share of --max-minutes the trunk features may take (the rest: heads)


def fit_supervised(config: TrainConfig) -> TrainResult:
    """Train good-vs-defect (and defect type) on a dataset folder and export the ONNX package."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    dataset = ds.scan(config.data, strict=config.strict)
    config = replace(config.with_size(dataset.samples), mode="supervised")
    ds.require_enough(dataset, need_defects=True)
    samples = dataset.samples
    groups = ds.group_keys(samples, config.group_by, config.group_size)
    folds = list(ds.kfold(dataset, config.folds, config.seed, groups))
    log.info("training on %d images (%s), %d-fold cross-validation", len(samples),
             dataset.count(), len(folds))

    types = dataset.defect_types if len(dataset.defect_types) >= 2 else []
    head_config = SupervisedConfig(n_types=len(types))
    net = SupervisedNet(head_config).to(device)
    feats = trunk_features(net, samples, types, config, device)
    labels = dataset.labels

    oof = np.zeros(len(samples))
    for k, (keep, held) in enumerate(tqdm(folds, desc="cross-validation", unit="fold")):
        heads = train_heads(head_config, feats, keep, config.epochs, config.lr,
                            config.batch_size, config.seed + k, device)
        oof[held] = predict(heads, feats, held, device)
    threshold = select_threshold(oof, labels, config.target_recall, config.max_frr)
    scale = ScoreScale.fit(threshold.value, oof, bounded=True)
    net.heads = train_heads(head_config, feats, np.arange(len(samples)), config.epochs,
                            config.lr, config.batch_size, config.seed, device)
    net = net.cpu().eval()
    train_seconds = time.perf_counter() - start

    uses_masks = any(s.mask_path is not None for s in samples if s.label == 1)
    metrics = {**ranking_metrics(oof, labels), "recall": threshold.recall,
               "false_reject_rate": threshold.false_reject_rate,
               "threshold": threshold.to_dict(), "split": f"out-of-fold ({len(folds)} folds)",
               "n_good": threshold.n_good, "n_defect": threshold.n_defect,
               "trade_off": trade_off(oof, labels)}
    info = base_info(
        config, ds.fingerprint(samples, dataset.root),
        threshold=threshold.value, score_scale=scale.to_dict(),
        defect_types=list(dataset.defect_types), metrics=metrics,
        training={"config": config.to_dict(), "n_train": len(samples), "folds": len(folds),
                  "views": feats.n_views, "counts": dataset.count(),
                  "seconds": round(train_seconds, 1), "uses_masks": uses_masks,
                  "map": "segmentation" if uses_masks else "cam",
                  "environment": environment()},
        image_stats=ds.image_stats([s for s in samples if s.label == 0], ds.ImageStore()),
    )
    plain = ds.TorchDataset(samples[:PARITY_IMAGES], config.preprocessing, types, ds.ImageStore())
    check = torch.stack([plain[i][0] for i in range(len(plain))])
    result = export_onnx(SupervisedExport(net, scale, uses_masks), info, config.out, check)
    seconds = time.perf_counter() - start
    log.info("trained and exported in %.1f s: %s", seconds, result.path)
    return TrainResult(result.path, info, seconds,
                       ValidationScores([s.path for s in samples], labels, oof))


def trunk_features(net: SupervisedNet, samples: list[ds.Sample], types: list[str],
                   config: TrainConfig, device):
    """Frozen-trunk features of every image: the plain view plus config.views - 1 augmented."""
    store = ds.ImageStore()
    views = [ds.TorchDataset(samples, config.preprocessing, types, store)]
    for v in range(1, config.views):
        view = ds.TorchDataset(samples, config.preprocessing, types, store, ds.Augment(),
                               seed=config.seed)
        view.epoch = v  # each view its own augmentation draw
        views.append(view)
    budget = config.max_minutes * 60 * FEATURE_BUDGET if config.max_minutes else None
    return extract_features(net, views, device, config.batch_size, budget)
