"""PatchCore on EfficientNet-Lite0: the plain torch model, exported whole to ONNX.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022), as in
anomalib's `patchcore/torch_model.py`: locally aware patch features from two backbone stages,
a memory bank of good patches reduced by greedy coreset subsampling, nearest-neighbour distance
as the patch score, the anomaly map upsampled to the input and smoothed. Everything after the
image decode lives in `forward`, so one ONNX graph holds backbone, bank, search and map.

Export-driven choices: no torch.cdist (distances are ||a||^2 - 2ab + ||b||^2 with one matmul,
then min); the bank is searched in fixed chunks (bounded memory, unrolled at trace time); the
features are centred on the bank mean before the search so the expansion loses little precision.
See docs/anomaly.md for the measurements behind the defaults.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.backbone import STAGE_STRIDES, EfficientNetLite0
from training.calibration import ScoreScale, ScoreScaleLayer

log = logging.getLogger(__name__)


@dataclass
class PatchCoreConfig:
    """The model's knobs; defaults chosen by the mean and worst of five real data set families
    (docs/benchmarks.md), not by one."""

    # stride-16 texture + stride-16 context + stride-32 parts (80 + 112 + 192 channels). Why:
    # held-out image AUROC over KolektorSDD, BSData, PIPED, ELPV mono/poly: mean 0.953, worst
    # 0.885, against 0.930 / 0.830 for the stride-8 (2, 4) tuned on KolektorSDD alone
    stages: tuple[int, ...] = (3, 4, 5)
    neighbourhood: int = 1  # avg-pool size; the paper's 3x3 blurs thin cracks (-0.02..0.05 AUROC)
    max_bank: int = 4096  # KolektorSDD image AUROC is flat from 1024 to 16384 (docs/anomaly.md)
    # Why: search cost = query patches x bank rows; 784 x 4096 is ~18 ms/image on one core at
    # 224x224, and the same budget gives 1792 rows at 224x512 (~30 ms): bigger inputs get a
    # smaller bank so the station stays under 40 ms per image.
    search_budget: int = 784 * 4096
    pad: int = 32  # reflect-pad the input (px, multiple of 16) so border patches look interior
    blur_sigma: float = 4.0  # Gaussian smoothing of the upsampled map, in input pixels (paper)
    chunk: int = 4096  # bank rows per matmul: bounds the distance matrix's memory
    score: str = "map_max"  # image score: max of the smoothed map, or "patch_max" (measured equal)
    # Divide each patch distance by what good images reach at that place (leave-parts-out, see
    # anomaly_fit.position_reference): KolektorSDD image AUROC 0.82 -> 0.90, where harmless
    # oddities recur at fixed places; generated flanges 0.99 -> 0.92, where defects sit where
    # good parts vary. "auto": kept only if it raises the validation AUROC (needs defect
    # images); "on" / "off" force it.
    position_norm: str = "auto"
    position_folds: int = 4  # leave-parts-out folds for the reference (each fits its own bank)
    position_sigma: float = 1.0  # smoothing of the reference, in patch cells

    def to_dict(self) -> dict:
        return asdict(self)


class PatchCore(nn.Module):
    """Image (N, 3, H, W) RGB 0..255 -> (score, raw_score, anomaly_map) on the qc scale."""

    def __init__(self, backbone: EfficientNetLite0, config: PatchCoreConfig,
                 input_size: tuple[int, int]):
        super().__init__()
        _check(config)
        self.backbone = backbone.eval()
        self._truncate_backbone(max(config.stages))
        self.config = config
        self.input_hw = (int(input_size[1]), int(input_size[0]))
        # reflect padding must stay inside the image: tiny inputs get less (a stride multiple)
        stride = STAGE_STRIDES[max(config.stages)]
        self.pad = min(config.pad, (min(input_size) - 1) // stride * stride)
        self.feature_dim = sum(self._stage_channels(s) for s in config.stages)
        self.register_buffer("bank", torch.zeros(1, self.feature_dim))  # (M, D)
        self.register_buffer("bank_sq", torch.zeros(1))  # (M,) squared norms
        self.register_buffer("center", torch.zeros(self.feature_dim))  # (D,)
        self.register_buffer("blur", gaussian_kernel(config.blur_sigma))  # (K,)
        self.register_buffer("pos_ref", torch.ones(self.grid_hw))  # (h, w) distance divisor
        self.scale = ScoreScaleLayer(ScoreScale(0.0, 0.5, 1.0))  # identity until calibrated

    def _truncate_backbone(self, deepest: int) -> None:
        """Drop the blocks after the deepest tap and the classifier head (export size, speed)."""
        b = self.backbone
        b._blocks = b._blocks[: b.stage_ends[deepest] + 1]
        b.stage_ends = b.stage_ends[: deepest + 1]
        b._conv_head, b._bn1, b._fc = nn.Identity(), nn.Identity(), nn.Identity()

    def _stage_channels(self, stage: int) -> int:
        block = self.backbone._blocks[self.backbone.stage_ends[stage]]
        return block._project_conv.out_channels

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features: (N, 3, H, W) -> (N, D, h, w) on the first tap's grid."""
        p = self.pad
        if p:
            x = F.pad(x, (p, p, p, p), mode="reflect")  # (N, 3, H + 2p, W + 2p)
        _, taps = self.backbone.features(x, stages=self.config.stages, head=False)
        k = self.config.neighbourhood
        maps = []
        for s in self.config.stages:
            m = taps[s]  # (N, C, h', w')
            if k > 1:  # locally aware patches: mean over a k x k neighbourhood
                m = F.avg_pool2d(m, k, 1, k // 2, count_include_pad=False)
            c = p // STAGE_STRIDES[s]  # the padding's cells at this stage
            maps.append(m[..., c : m.shape[-2] - c, c : m.shape[-1] - c] if c else m)
        grid = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
                            for m in maps[1:]]
        return torch.cat(maps, dim=1)  # (N, D, h, w)

    @property
    def grid_hw(self) -> tuple[int, int]:
        """The patch grid (h, w) of one input image."""
        stride = STAGE_STRIDES[self.config.stages[0]]
        return math.ceil(self.input_hw[0] / stride), math.ceil(self.input_hw[1] / stride)

    def bank_size(self, n_patches: int, ratio: float) -> int:
        """Rows to keep: ratio of the patches, within max_bank and the search budget."""
        per_image = math.prod(self.grid_hw)  # query patches per image
        by_budget = max(256, self.config.search_budget // per_image)
        return max(1, min(self.config.max_bank, by_budget, math.ceil(ratio * n_patches)))

    def set_bank(self, bank: torch.Tensor) -> None:
        """Store the coreset (M, D); features are centred on its mean for a precise search."""
        bank = bank.float()
        self.center = bank.mean(0)  # (D,)
        self.bank = bank - self.center  # (M, D)
        self.bank_sq = (self.bank * self.bank).sum(1)  # (M,)

    def set_position_reference(self, ref: torch.Tensor | None) -> None:
        """Store the per-position divisor (h, w): smoothed, floored at half its median.

        None restores plain distances (a divisor of 1 everywhere).
        """
        if ref is None:
            self.pos_ref = torch.ones_like(self.pos_ref)
            return
        ref = smooth(ref.float()[None, None], gaussian_kernel(self.config.position_sigma))[0, 0]
        self.pos_ref = ref.clamp_min(0.5 * float(ref.median())).to(self.pos_ref)

    def set_scale(self, scale: ScoreScale) -> None:
        """Map raw distances to the 0..1 scale (threshold -> 0.5) inside the graph."""
        self.scale = ScoreScaleLayer(scale)

    def nearest(self, emb: torch.Tensor) -> torch.Tensor:
        """Distance of every patch to its nearest bank patch: (N, D, h, w) -> (N, h, w).

        The matmul expansion finds the neighbour; its distance is then recomputed directly,
        because the expansion cancels badly for near-duplicates and sqrt amplifies that near 0.
        """
        n, d, h, w = emb.shape
        q = emb.permute(0, 2, 3, 1).reshape(-1, d) - self.center  # (Q, D)
        best = None
        for start in range(0, self.bank.shape[0], self.config.chunk):
            b = self.bank[start : start + self.config.chunk]  # (C, D)
            d2 = self.bank_sq[start : start + self.config.chunk] - 2 * q @ b.t()  # (Q, C) - |q|^2
            near = b[d2.argmin(dim=1)]  # (Q, D)
            exact = ((q - near) ** 2).sum(1)  # (Q,)
            best = exact if best is None else torch.minimum(best, exact)
        return best.sqrt().reshape(n, h, w)  # (N, h, w)

    def raw_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw image score (N,) and smoothed raw map (N, H, W) in distance units."""
        return self.score_embedding(self.embed(x))

    def score_embedding(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """raw_maps() from patch features (N, D, h, w): lets benchmarks reuse one extraction."""
        return self.score_distances(self.nearest(emb))

    def score_distances(self, dists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image score (N,) and smoothed map (N, H, W) from nearest-bank distances (N, h, w)."""
        patches = dists / self.pos_ref  # (N, h, w)
        amap = F.interpolate(patches[:, None], size=self.input_hw, mode="bilinear",
                             align_corners=False)  # (N, 1, H, W)
        amap = smooth(amap, self.blur)[:, 0]  # (N, H, W)
        if self.config.score == "map_max":
            score = amap.flatten(1).max(dim=1).values  # (N,)
        else:
            score = patches.flatten(1).max(dim=1).values  # (N,)
        return score, amap

    def forward(self, x: torch.Tensor):
        raw, amap = self.raw_maps(x)
        return self.scale(raw), raw, self.scale(amap)  # (N,), (N,), (N, H, W)


def _check(config: PatchCoreConfig) -> None:
    """Refuse settings the graph cannot honour, with what to change."""
    stride = STAGE_STRIDES[max(config.stages)]
    if config.pad % stride or config.pad < 0:
        raise ValueError(f"pad must be a multiple of {stride} px, got {config.pad}")
    if config.position_norm not in ("auto", "on", "off"):
        raise ValueError(f"position_norm must be 'auto', 'on' or 'off', not "
                         f"{config.position_norm!r}")
    if config.score not in ("map_max", "patch_max"):
        raise ValueError(f"score must be 'map_max' or 'patch_max', not {config.score!r}")
    if len(config.stages) < 1 or sorted(config.stages) != list(config.stages):
        raise ValueError(f"stages must be ascending backbone stage indices, got {config.stages}")


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D normalized Gaussian (K,), K = 2 * ceil(4 sigma) + 1 (anomalib's width)."""
    radius = max(1, math.ceil(4 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(amap: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with edge replication (ONNX Pad 'edge')."""
    r = kernel.numel() // 2
    x = F.pad(amap, (r, r, r, r), mode="replicate")  # (N, 1, H + 2r, W + 2r)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))  # (N, 1, H + 2r, W)
    return F.conv2d(x, kernel.view(1, 1, -1, 1))  # (N, 1, H, W)


def greedy_coreset(features: torch.Tensor, k: int, proj_dim: int = 64, seed: int = 0,
                   block: int = 16384) -> torch.Tensor:
    """Indices of k rows chosen by k-center greedy (PatchCore's coreset), (k,) long.

    Distances use a fixed Gaussian random projection to `proj_dim` dims (Johnson-Lindenstrauss,
    as in the paper). Above `block` rows the search is two-level: each random block of rows is
    reduced by greedy selection, then the union again. Why: a block of 16k x 64 floats stays in
    the CPU cache, which makes each greedy step ~10-30x faster than one pass over all patches.
    """
    n = features.shape[0]
    if k >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()  # (P, D)
    if proj_dim and proj_dim < x.shape[1]:
        x = x @ (torch.randn(x.shape[1], proj_dim, generator=gen) / math.sqrt(proj_dim))  # (P, d)
    if n <= block:
        return _greedy(x, k, gen)
    parts = torch.randperm(n, generator=gen).split(block)
    per_part = max(math.ceil(k / len(parts)), block // len(parts))
    pool = torch.cat([p[_greedy(x[p], min(per_part, len(p)), gen)] for p in parts])  # (U,)
    return pool[_greedy(x[pool], k, gen)] if k < len(pool) else pool


def _greedy(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-center greedy on rows of x (P, d): each step adds the row farthest from the chosen."""
    x_sq = (x * x).sum(1)  # (P,)
    chosen = torch.empty(k, dtype=torch.long)
    idx = int(torch.randint(len(x), (1,), generator=gen))
    min_d = torch.full((len(x),), float("inf"))
    for i in range(k):
        chosen[i] = idx
        c = x[idx]  # (d,)
        torch.minimum(min_d, x_sq - 2 * (x @ c) + c @ c, out=min_d)  # (P,)
        idx = int(torch.argmax(min_d))
    return chosen
