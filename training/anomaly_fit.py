"""Fit a PatchCore anomaly model from good images, calibrate its threshold and export it.

`qc train DATA --mode anomaly` calls fit_anomaly(). Only DATA/good images of the training part
enter the memory bank; held-out good images and every defect image (if any) are used only to
set the threshold and the score scale and to report validation metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from qc.imaging import preprocess, read_mask, resize
from training.anomaly import PatchCore, PatchCoreConfig, greedy_coreset
from training.backbone import load_pretrained
from training.calibration import (
    ScoreScale,
    good_only_threshold,
    select_threshold,
    trade_off,
)
from training.config import (
    TrainConfig,
    TrainResult,
    ValidationScores,
    base_info,
    environment,
    pick_device,
)
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
    config = replace(config.with_size([s for s in dataset.samples if s.label == 0]),
                     mode="anomaly")
    train, held_good, defects = split_anomaly(dataset.samples, config)
    store, prep = ImageStore(), config.preprocessing
    device = pick_device(config.device)
    model_config = model_config or PatchCoreConfig(position_norm=config.position_norm)
    model = PatchCore(load_pretrained(keep_classifier=False), model_config, config.size).to(device)
    calib = held_good + defects
    labels = np.array([s.label for s in calib])
    want_ref = needs_position_reference(model.config.position_norm, len(defects))
    bank_info, ref, oof = build_bank(model, train, store, prep, config, want_ref)
    dists = patch_distances(model, calib, store, prep)  # (N, h, w), before normalization
    bank_info.update(choose_position_norm(model, ref, dists, labels))
    maps = [] if any(s.mask_path for s in defects) else None  # for pixel AUROC
    raw = score_distances(model, dists, maps)
    # The threshold rests on every good image: held out, plus the training ones scored without
    # their part (not when the position reference is applied: it was fit on those distances)
    if oof is not None and not bank_info["position_norm"]:
        calib, raw, labels = (calib + train, np.append(raw, score_distances(model, oof)),
                              np.append(labels, np.zeros(len(train), int)))
    threshold = (select_threshold(raw, labels, config.target_recall, config.max_frr)
                 if len(defects)
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
    return TrainResult(path=path, info=info, seconds=seconds,
                       validation=ValidationScores([s.path for s in calib], labels, raw))


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
               config: TrainConfig, want_ref: bool):
    """Extract patch features of the training images and keep a greedy coreset as the bank.

    Before that, every training image is scored against a bank built without its part
    (leave-parts-out): these distances (N, h, w) calibrate the threshold on all good images,
    not only the few held out, and with want_ref their per-position maximum is the position
    reference (returned, not yet applied: choose_position_norm decides).
    Returns (info, reference or None, leave-parts-out distances or None).
    """
    device = next(model.buffers()).device
    embs = [model.embed(x.to(device)).cpu() for x in batches(train, store, prep, "features")]
    embs = torch.cat(embs)  # (N, D, h, w)
    groups = group_keys(train, config.group_by, config.group_size)
    oof, folds = leave_parts_out(model, embs, groups, config)
    ref = oof.max(dim=0).values if want_ref and oof is not None else None
    feats = flatten(embs)  # (P, D)
    k = model.bank_size(len(feats), config.coreset_ratio)
    t = time.perf_counter()
    model.set_bank(feats[greedy_coreset(feats, k, seed=config.seed)].to(device))
    log.info("memory bank: %d of %d patches (coreset %.1f s)", k, len(feats),
             time.perf_counter() - t)
    return {"bank_size": k, "n_patches": len(feats), "coreset_ratio": config.coreset_ratio,
            "layers": list(model.config.stages), "feature_dim": model.feature_dim,
            "position_folds": folds}, ref, oof


def needs_position_reference(mode: str, n_defects: int) -> bool:
    """Whether to learn the position reference: forced on, or "auto" with defect images to
    measure its effect (choose_position_norm then decides whether to keep it)."""
    return mode == "on" or (mode == "auto" and n_defects > 0)


def choose_position_norm(model: PatchCore, ref: torch.Tensor | None, dists: torch.Tensor,
                         labels: np.ndarray) -> dict:
    """Apply the position reference per the model's config and say what was decided.

    "auto" keeps it only when it raises the AUROC on the calibration images (held-out good +
    defects); without defect images it cannot be measured, so plain distances are used.
    """
    mode = model.config.position_norm
    model.set_position_reference(ref if mode == "on" else None)
    if ref is None or mode != "auto":
        return {"position_norm": mode == "on" and ref is not None}
    plain = float(roc_auc_score(labels, score_distances(model, dists)))
    model.set_position_reference(ref)
    normalized = float(roc_auc_score(labels, score_distances(model, dists)))
    keep = normalized > plain
    if not keep:
        model.set_position_reference(None)
    log.info("position normalization %s: validation AUROC %.3f with it, %.3f without",
             "kept" if keep else "dropped", normalized, plain)
    return {"position_norm": keep,
            "position_norm_auroc": {"with": round(normalized, 4), "without": round(plain, 4)}}


def flatten(embs: torch.Tensor) -> torch.Tensor:
    """(N, D, h, w) patch features -> (N*h*w, D) rows."""
    return embs.permute(0, 2, 3, 1).reshape(-1, embs.shape[1])


def position_reference(model: PatchCore, embs: torch.Tensor, groups: list[str],
                       config: TrainConfig) -> tuple[torch.Tensor | None, int]:
    """Per-position max (h, w) of training patches' distances to banks built without their part:
    what a new good part reaches at each place. Returns (None, 0) with under two parts."""
    dists, folds = leave_parts_out(model, embs, groups, config)
    return (None, 0) if dists is None else (dists.max(dim=0).values, folds)


@torch.no_grad()
def leave_parts_out(model: PatchCore, embs: torch.Tensor, groups: list[str],
                    config: TrainConfig) -> tuple[torch.Tensor | None, int]:
    """Nearest-bank distances (N, h, w) of each training image against a coreset of the other
    folds of parts, and the number of folds; (None, 0) with under two parts."""
    keys = sorted(set(groups))
    n_folds = min(model.config.position_folds, len(keys))
    if n_folds < 2:
        log.warning("leave-parts-out scores skipped: the good images form one part")
        return None, 0
    order = np.random.default_rng(config.seed).permutation(len(keys))
    fold_of = {keys[j]: i % n_folds for i, j in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    device = next(model.buffers()).device
    out = torch.zeros(len(embs), *model.grid_hw)
    for f in tqdm(range(n_folds), desc="leave-parts-out banks", unit="fold", leave=False):
        rest = flatten(embs[torch.from_numpy(fold != f)])  # (P', D)
        k = model.bank_size(len(rest), config.coreset_ratio)
        model.set_bank(rest[greedy_coreset(rest, k, seed=config.seed + f)].to(device))
        idx = np.flatnonzero(fold == f)
        for chunk in np.array_split(idx, max(1, len(idx) // BATCH)):
            out[chunk] = model.nearest(embs[chunk].to(device)).cpu()  # (B, h, w)
    return out, n_folds


@torch.no_grad()
def patch_distances(model: PatchCore, samples: list[Sample], store: ImageStore,
                    prep) -> torch.Tensor:
    """Plain nearest-bank distances (N, h, w) of the samples' patches."""
    device = next(model.buffers()).device
    out = [model.nearest(model.embed(x.to(device))).cpu()
           for x in batches(samples, store, prep, "scoring")]
    return torch.cat(out) if out else torch.zeros(0, *model.grid_hw)


@torch.no_grad()
def score_distances(model: PatchCore, dists: torch.Tensor, maps: list | None = None) -> np.ndarray:
    """Raw image scores (N,) as the graph computes them from distances (N, h, w); with `maps`,
    also collect raw anomaly maps at half resolution."""
    device = next(model.buffers()).device
    scores = []
    for chunk in dists.split(BATCH):
        raw, amap = model.score_distances(chunk.to(device))  # (B,), (B, H, W)
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
        metrics["trade_off"] = trade_off(raw, labels)
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
