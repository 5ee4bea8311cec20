"""Training and evaluation loops for the supervised model (explicit arguments, reusable)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm import tqdm

from training.supervised import SupervisedNet

log = logging.getLogger(__name__)

SEG_POS_WEIGHT = 10.0  # defect pixels are rare: weigh them up so the mask is learnt at all
SEG_LOSS_WEIGHT = 1.0
TYPE_LOSS_WEIGHT = 0.5
LOSS_MIN_DELTA = 0.1  # at equal AUROC/AP, only a 10% lower loss counts as progress
TRUNK_LR = 0.3  # pretrained layers move slower than the new heads


def compute_loss(net: SupervisedNet, out: dict, label, type_idx, mask) -> torch.Tensor:
    """Image BCE + masked pixel BCE (where a mask is known) + defect-type CE (defects only)."""
    loss = F.binary_cross_entropy_with_logits(out["logit"], label)
    seg = out["seg"][:, 0]  # (B, h, w)
    known = mask[:, 0, 0] >= 0  # (B,) images with a mask (good images: all-zero mask)
    if known.any():
        target = F.adaptive_max_pool2d(mask[known][:, None], seg.shape[-2:])[:, 0]  # (b, h, w)
        pos_weight = torch.tensor(SEG_POS_WEIGHT, device=seg.device)
        loss = loss + SEG_LOSS_WEIGHT * F.binary_cross_entropy_with_logits(
            seg[known], target, pos_weight=pos_weight
        )
    if out["type_logits"] is not None and (type_idx >= 0).any():
        has_type = type_idx >= 0
        loss = loss + TYPE_LOSS_WEIGHT * F.cross_entropy(
            out["type_logits"][has_type], type_idx[has_type]
        )
    return loss


def train_one_epoch(net, loader, optimizer, scheduler, device, epoch: int) -> float:
    """One pass over the loader; returns the mean loss."""
    net.train()
    total, count = 0.0, 0
    for x, label, type_idx, mask in tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False):
        x, label = x.to(device), label.to(device)
        type_idx, mask = type_idx.to(device), mask.to(device)
        loss = compute_loss(net, net(x), label, type_idx, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / max(count, 1)


@torch.no_grad()
def predict(net, loader, device) -> tuple[np.ndarray, np.ndarray, float]:
    """Defect probabilities and labels over a loader, and the mean loss."""
    net.eval()
    probs, labels, total = [], [], 0.0
    for x, label, type_idx, mask in loader:
        x, label = x.to(device), label.to(device)
        out = net(x)
        total += float(compute_loss(net, out, label, type_idx.to(device), mask.to(device))) * len(x)
        probs.append(torch.sigmoid(out["logit"]).cpu().numpy())
        labels.append(label.cpu().numpy())
    probs, labels = np.concatenate(probs), np.concatenate(labels).astype(int)
    return probs, labels, total / max(len(labels), 1)


def ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC and average precision (nan when only one class is present)."""
    if len(np.unique(labels)) < 2:
        return {"auroc": float("nan"), "average_precision": float("nan")}
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }


@dataclass
class FitOutcome:
    net: SupervisedNet
    history: list[dict]
    best_epoch: int


def _selection_key(metrics: dict, val_loss: float) -> tuple[float, float, float]:
    return (np.nan_to_num(metrics["average_precision"]), np.nan_to_num(metrics["auroc"]),
            -val_loss)


def _improves(key: tuple, best: tuple) -> bool:
    """Better ranking, or equal ranking with a validation loss lower by > LOSS_MIN_DELTA."""
    if key[:2] != best[:2]:
        return key[:2] > best[:2]
    return key[2] > best[2] * (1 - LOSS_MIN_DELTA)  # keys hold -loss: less negative is better


def fit(net, train_loader, val_loader, device, epochs: int, patience: int, lr: float,
        on_epoch=None, time_budget_s: float | None = None) -> FitOutcome:
    """Train with AdamW + one-cycle LR, keep the epoch with the best validation AP (then loss)."""
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    head = [p for n, p in params if not n.startswith("backbone.")]
    trunk = [p for n, p in params if n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": head, "lr": lr}, {"params": trunk, "lr": lr * TRUNK_LR}], weight_decay=1e-4
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[lr, lr * TRUNK_LR], total_steps=epochs * len(train_loader),
        pct_start=0.15,
    )
    best, best_key, best_epoch, history, stale = None, None, 0, [], 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        if on_epoch:
            on_epoch(epoch)
        train_loss = train_one_epoch(net, train_loader, optimizer, scheduler, device, epoch)
        probs, labels, val_loss = predict(net, val_loader, device)
        metrics = ranking_metrics(probs, labels)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, **metrics,
               "seconds": time.perf_counter() - start}
        history.append(row)
        log.info("epoch %d: train loss %.4f, val loss %.4f, val AUROC %.4f, AP %.4f (%.0f s)",
                 epoch, train_loss, val_loss, metrics["auroc"], metrics["average_precision"],
                 row["seconds"])
        key = _selection_key(metrics, val_loss)
        if best_key is None or _improves(key, best_key):
            best, best_key, best_epoch, stale = copy.deepcopy(net.state_dict()), key, epoch, 0
        else:
            stale += 1
        elapsed = time.perf_counter() - started
        if stale >= patience:
            log.info("early stop: no validation improvement for %d epochs", patience)
            break
        if time_budget_s and elapsed + row["seconds"] > time_budget_s and epoch < epochs:
            log.warning("stopping after epoch %d: the next epoch would pass the %.0f-minute "
                        "time budget (--max-minutes)", epoch, time_budget_s / 60)
            break
    net.load_state_dict(best)
    return FitOutcome(net.eval(), history, best_epoch)
