"""Fit a PatchCore anomaly model from good images, calibrate its threshold and export it.

`qc train DATA --mode anomaly` calls fit_anomaly(). Only DATA/good images of the training part
enter the memory bank; held-out good images and every defect image (if any) are used only to
set the threshold and the score scale and to report validation metrics.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from qc.imaging import preprocess, read_mask, resize
from training.anomaly import PatchCore, PatchCoreConfig, greedy_coreset
from training.backbone import load_pretrained
from training.calibration import ScoreScale, good_only_threshold, select_threshold
from training.config import TrainConfig, TrainResult, base_info, environment, pick_device
from training.data import (
    DatasetError,
    ImageStore,
    Sample,
    fingerprint,
    group_keys,
    image_stats,
    scan,
)
from training.export import export_onnx

log = logging.getLogger(__name__)

MIN_GOOD = 5  # hard floor: 3 for the bank + 2 held out for the threshold
FEW_GOOD = 20  # below this the threshold rests on very few held-out scores: warn
MIN_HELD_GOOD = 2  # good_only_threshold needs two scores
BATCH = 8  # feature extraction batch: small, so 2-core PCs keep memory low
N_PARITY = 4  # held-out images used for the ONNX-vs-torch parity check


def fit_anomaly(config: TrainConfig, model_config: PatchCoreConfig | None = None) -> TrainResult:
    """Learn DATA/good, calibrate on held-out good (+ defect) images, export ONNX."""
    start = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = scan(config.data, strict=config.strict)
    train, held_good, defects = split_anomaly(dataset.samples, config)
    store, prep = ImageStore(), config.preprocessing
    device = pick_device(config.device)
    model = PatchCore(load_pretrained(keep_classifier=False), model_config or PatchCoreConfig(),
                      config.size).to(device)
    bank_info = build_bank(model, train, store, prep, config)
    calib = held_good + defects
    maps = [] if any(s.mask_path for s in defects) else None  # for pixel AUROC
    raw = score_samples(model, calib, store, prep, maps)
    labels = np.array([s.label for s in calib])
    threshold = (select_threshold(raw, labels, config.target_recall) if len(defects)
                 else good_only_threshold(raw, config.target_frr))
    # Why 0 as a raw score: a distance of 0 (a patch seen in training) is the natural 0 of the
    # scale, and the map's pixels, mostly below every image score, keep their order (not clipped)
    scale = ScoreScale.fit(threshold.value, np.append(raw, 0.0))
    model.set_scale(scale)
    model = model.cpu()
    seconds = time.perf_counter() - start
    info = base_info(
        config, fingerprint(dataset.samples, dataset.root),
        threshold=threshold.value, score_scale=scale.to_dict(),
        defect_types=dataset.defect_types,
        metrics=validation_metrics(calib, raw, labels, threshold, maps, store, prep),
        training={"n_train_good": len(train), "n_val_good": len(held_good),
                  "n_val_defect": len(defects), "seconds": round(seconds, 1),
                  "model": model.config.to_dict(), **bank_info, "environment": environment()},
        image_stats=image_stats(train, store),
    )
    check = torch.from_numpy(np.stack([preprocess(store.get(s.path), prep)
                                       for s in (calib + train)[:N_PARITY]]))
    path = Path(config.out)  # the model file, as for supervised models (qc train --out)
    export_onnx(model, info, path, check)
    seconds = time.perf_counter() - start
    log.info("anomaly model trained on %d good images in %.1f s -> %s", len(train), seconds, path)
    return TrainResult(path=path, info=info, seconds=seconds)


def split_anomaly(samples: list[Sample], config: TrainConfig):
    """(train good, held-out good, defect) samples; a part's good images stay together."""
    good = [s for s in samples if s.label == 0]
    defects = [s for s in samples if s.label == 1]
    if len(good) < MIN_GOOD:
        raise DatasetError(
            f"{config.data}: {len(good)} good images in good/; anomaly mode needs at least "
            f"{MIN_GOOD} (20 or more recommended): add photos of defect-free parts"
        )
    if len(good) < FEW_GOOD:
        log.warning("only %d good images: the model and its threshold will be rough; "
                    "%d or more are recommended", len(good), FEW_GOOD)
    groups = group_keys(good, config.group_by, config.group_size)
    want = min(max(MIN_HELD_GOOD, round(config.val_fraction * len(good))), len(good) - 3)
    order = np.random.default_rng(config.seed).permutation(sorted(set(groups)))
    held_groups: set[str] = set()
    for g in order:  # whole parts, in random order, until enough images are held out
        if sum(k in held_groups for k in groups) >= want:
            break
        held_groups.add(g)
    held = [i for i, k in enumerate(groups) if k in held_groups]
    keep = [i for i, k in enumerate(groups) if k not in held_groups]
    if len(held) < MIN_HELD_GOOD or len(keep) < 3:
        raise DatasetError(f"{config.data}: the good images form too few parts ({len(order)}) "
                           "to hold some out for the threshold; loosen --group-by/--group-size")
    return [good[i] for i in sorted(keep)], [good[i] for i in sorted(held)], defects


def batches(samples: list[Sample], store: ImageStore, prep, desc: str):
    """Preprocessed batches (B, 3, H, W) of samples, with a progress bar."""
    for i in tqdm(range(0, len(samples), BATCH), desc=desc, unit="batch", leave=False):
        chunk = samples[i : i + BATCH]
        yield torch.from_numpy(np.stack([preprocess(store.get(s.path), prep) for s in chunk]))


@torch.no_grad()
def build_bank(model: PatchCore, train: list[Sample], store: ImageStore, prep,
               config: TrainConfig) -> dict:
    """Extract patch features of the training images and keep a greedy coreset as the bank."""
    device = next(model.buffers()).device
    feats = []
    for x in batches(train, store, prep, "features"):
        emb = model.embed(x.to(device))  # (B, D, h, w)
        feats.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).cpu())  # (B*h*w, D)
    feats = torch.cat(feats)  # (P, D)
    k = model.bank_size(len(feats), config.coreset_ratio)
    t = time.perf_counter()
    idx = greedy_coreset(feats, k, seed=config.seed)
    model.set_bank(feats[idx].to(device))
    log.info("memory bank: %d of %d patches (coreset %.1f s)", k, len(feats),
             time.perf_counter() - t)
    return {"bank_size": k, "n_patches": len(feats), "coreset_ratio": config.coreset_ratio,
            "layers": list(model.config.stages), "feature_dim": model.feature_dim}


@torch.no_grad()
def score_samples(model: PatchCore, samples: list[Sample], store: ImageStore, prep,
                  maps: list | None = None) -> np.ndarray:
    """Raw image scores (N,); with `maps`, also collect raw anomaly maps at half resolution."""
    device = next(model.buffers()).device
    scores = []
    for x in batches(samples, store, prep, "scoring"):
        raw, amap = model.raw_maps(x.to(device))  # (B,), (B, H, W)
        scores.append(raw.cpu().numpy())
        if maps is not None:
            maps.extend(amap[:, ::2, ::2].cpu().numpy())  # (B, H/2, W/2): AUROC within ~1e-3
    return np.concatenate(scores) if scores else np.zeros(0)


def validation_metrics(calib, raw, labels, threshold, maps, store, prep) -> dict:
    """Metrics on the calibration images (held-out good + defects); pixel AUROC if masks exist."""
    metrics = {"threshold_method": threshold.method, "threshold": threshold.to_dict(),
               "recall": threshold.recall, "false_reject_rate": threshold.false_reject_rate,
               "n_good": threshold.n_good, "n_defect": threshold.n_defect,
               "expected_false_reject_rate": threshold.false_reject_rate
               if threshold.method == "target_recall" else threshold.target}
    if labels.min() != labels.max():
        metrics["auroc"] = float(roc_auc_score(labels, raw))
    if maps is not None:
        metrics["pixel_auroc"] = pixel_auroc(calib, maps, store, prep)
    return metrics


def pixel_auroc(samples: list[Sample], maps: list, store: ImageStore, prep) -> float:
    """Pixel AUROC over good images (all pixels normal) and defect images with masks."""
    y, p = [], []
    for s, amap in zip(samples, maps):
        if s.label == 1 and s.mask_path is None:
            continue
        hw = store.get(s.path).shape[:2]
        mask = np.zeros(hw, bool) if s.label == 0 else read_mask(s.mask_path, hw)
        truth = resize(mask.astype(np.uint8) * 255, prep, pad=0) > 127  # (H, W)
        y.append(truth[::2, ::2].ravel())
        p.append(amap.ravel())
    return float(roc_auc_score(np.concatenate(y), np.concatenate(p)))
