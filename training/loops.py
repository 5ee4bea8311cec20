"""Training loops of the supervised model: trunk features once, then heads on the cache.

extract_features() runs the frozen trunk once per image and augmented view; train_heads() and
predict() then work on those tensors only, so k-fold cross-validation costs seconds per fold.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.supervised import SupervisedConfig, SupervisedHeads, SupervisedNet

log = logging.getLogger(__name__)

SEG_POS_WEIGHT = 10.0  # defect pixels are rare: weigh them up so the mask is learnt at all
SEG_LOSS_WEIGHT = 1.0
TYPE_LOSS_WEIGHT = 0.5
WEIGHT_DECAY = 1e-4


@dataclass
class Features:
    """Frozen-trunk features of N images x V views (view 0 is the unaugmented image)."""

    tap: torch.Tensor  # (V, N, 112, h, w) float16: stride-16 features for the seg head
    pooled: torch.Tensor  # (V, N, 1280) float16: pooled head features for the classifier
    mask: torch.Tensor  # (V, N, h, w): defect pixels on the seg grid; -1 where unknown
    label: torch.Tensor  # (N,) float 0/1
    type_idx: torch.Tensor  # (N,) long, -1 for good images or a single type

    @property
    def n_views(self) -> int:
        return self.tap.shape[0]


@torch.no_grad()
def extract_features(net: SupervisedNet, datasets: list, device, batch_size: int,
                     max_seconds: float | None = None) -> Features:
    """Run the frozen trunk over each view's dataset (data.TorchDataset, same samples each).

    With max_seconds, no view starts that would end past it (view 0 always runs).
    """
    net.eval()
    taps, pooled, masks = [], [], []
    labels = types = None
    started = time.perf_counter()
    for v, dataset in enumerate(datasets):
        elapsed = time.perf_counter() - started
        if v and max_seconds and elapsed * (v + 1) / v > max_seconds:
            log.warning("time budget: %d of %d augmented views", v - 1, len(datasets) - 1)
            break
        t, p, m, lab, typ = [], [], [], [], []
        loader = DataLoader(dataset, batch_size=batch_size)
        for x, label, type_idx, mask in tqdm(loader, desc=f"features (view {v + 1}/"
                                             f"{len(datasets)})", unit="batch", leave=False):
            tap, last = net.features(x.to(device))
            t.append(tap.half().cpu())
            p.append(last.mean(dim=(2, 3)).half().cpu())
            # a grid cell is defective when any of its pixels is (max-pool), unknown stays -1
            m.append(F.adaptive_max_pool2d(mask[:, None], tap.shape[-2:])[:, 0])
            lab.append(label)
            typ.append(type_idx)
        taps.append(torch.cat(t))
        pooled.append(torch.cat(p))
        masks.append(torch.cat(m))
        labels, types = torch.cat(lab), torch.cat(typ)
    return Features(torch.stack(taps), torch.stack(pooled), torch.stack(masks), labels, types)


def compute_loss(out: dict, label, type_idx, mask) -> torch.Tensor:
    """Image BCE + masked pixel BCE (where a mask is known) + defect-type CE (defects only)."""
    loss = F.binary_cross_entropy_with_logits(out["logit"], label)
    seg = out["seg"][:, 0]  # (B, h, w)
    known = mask[:, 0, 0] >= 0  # (B,) images with a mask (good images: all-zero mask)
    if known.any():
        pos_weight = torch.tensor(SEG_POS_WEIGHT, device=seg.device)
        loss = loss + SEG_LOSS_WEIGHT * F.binary_cross_entropy_with_logits(
            seg[known], mask[known], pos_weight=pos_weight
        )
    if out["type_logits"] is not None and (type_idx >= 0).any():
        has_type = type_idx >= 0
        loss = loss + TYPE_LOSS_WEIGHT * F.cross_entropy(
            out["type_logits"][has_type], type_idx[has_type]
        )
    return loss


def train_heads(config: SupervisedConfig, feats: Features, idx: np.ndarray, epochs: int,
                lr: float, batch_size: int, seed: int, device) -> SupervisedHeads:
    """Fit fresh heads on the images `idx` (all their views): AdamW, cosine LR, balanced draws.

    An epoch draws len(idx) images, good and defect equally often (defects are usually rare),
    each in a random view.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    heads = SupervisedHeads(config).to(device).train()
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    labels = feats.label[idx]
    n_def = max(int(labels.sum()), 1)
    n_good = max(len(idx) - int(labels.sum()), 1)
    weights = torch.where(labels == 1, 0.5 / n_def, 0.5 / n_good).double()
    steps = max(1, math.ceil(len(idx) / batch_size)) * epochs
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(epochs):
        draw = idx[torch.multinomial(weights, len(idx), replacement=True, generator=gen)]
        views = torch.randint(feats.n_views, (len(draw),), generator=gen)
        for b in range(0, len(draw), batch_size):
            i, v = draw[b : b + batch_size], views[b : b + batch_size]
            out = heads(feats.tap[v, i].float().to(device), feats.pooled[v, i].float().to(device))
            loss = compute_loss(out, feats.label[i].to(device), feats.type_idx[i].to(device),
                                feats.mask[v, i].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return heads.eval()


@torch.no_grad()
def predict(heads: SupervisedHeads, feats: Features, idx: np.ndarray, device,
            batch_size: int = 64) -> np.ndarray:
    """Defect probabilities (len(idx),) of the unaugmented view."""
    heads.eval()
    out = []
    for b in range(0, len(idx), batch_size):
        i = torch.as_tensor(np.asarray(idx[b : b + batch_size]), dtype=torch.long)
        logit = heads(feats.tap[0, i].float().to(device),
                      feats.pooled[0, i].float().to(device))["logit"]
        out.append(torch.sigmoid(logit).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC and average precision (nan when only one class is present)."""
    if len(np.unique(labels)) < 2:
        return {"auroc": float("nan"), "average_precision": float("nan")}
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }
