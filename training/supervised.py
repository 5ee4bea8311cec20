"""The supervised defect classifier (plain torch modules; training is in loops.py).

A frozen EfficientNet-Lite0 trunk (ImageNet weights, never updated) under small trained heads:
- a segmentation head on the stride-16 features, trained on pixel masks when a dataset has them
  (a crack of a few pixels is easier to learn from its mask than from one image label);
- the good/defect logit from the pooled 1280-d features plus the max and mean of the
  segmentation logits;
- defect-type logits when the dataset has two or more defect types.
Why frozen: the trunk's features are computed once per image (and per augmented view) and the
heads train on them in seconds, which makes out-of-fold thresholds affordable on a 2-core PC;
measured on held-out parts it loses nothing against fine-tuning (docs/benchmarks.md).
The export wrapper adds the score scale and the map (segmentation when masks were used, else a
class-activation map of the defect logit), so the station gets a heatmap from every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.backbone import HEAD_CHANNELS, STAGE_CHANNELS, EfficientNetLite0, load_pretrained
from training.calibration import ScoreScale, ScoreScaleLayer

SEG_STAGE = 4  # stride 16, 112 channels: fine enough for thin cracks, cheap enough for CPUs
SEG_MAP_SCALE = ScoreScale(0.0, 0.5, 1.0)


@dataclass
class SupervisedConfig:
    """Shape of the heads."""

    n_types: int = 0  # defect-type head only when >= 2 types
    seg_channels: int = 64
    dropout: float = 0.2


class SupervisedHeads(nn.Module):
    """Trained part: (stride-16 features, pooled head features) -> logits."""

    def __init__(self, config: SupervisedConfig):
        super().__init__()
        self.config = config
        self.seg = nn.Sequential(
            nn.Conv2d(STAGE_CHANNELS[SEG_STAGE], config.seg_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(config.seg_channels, 1, 1),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.cls = nn.Linear(HEAD_CHANNELS + 2, 1)
        self.types = nn.Linear(HEAD_CHANNELS, config.n_types) if config.n_types >= 2 else None

    def forward(self, tap: torch.Tensor, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = self.seg(tap)  # (B, 1, H/16, W/16)
        seg_stats = torch.stack([seg.amax(dim=(1, 2, 3)), seg.mean(dim=(1, 2, 3))], 1)  # (B, 2)
        logit = self.cls(torch.cat([self.dropout(pooled), seg_stats], 1)).squeeze(1)  # (B,)
        types = self.types(self.dropout(pooled)) if self.types is not None else None
        return {"logit": logit, "seg": seg, "seg_stats": seg_stats, "type_logits": types}


class SupervisedNet(nn.Module):
    """Image -> dict(logit (B,), seg (B, 1, H/16, W/16), type_logits (B, K) or None, last)."""

    def __init__(self, config: SupervisedConfig, backbone: EfficientNetLite0 | None = None):
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_pretrained()
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
        self.backbone.requires_grad_(False)
        self.heads = SupervisedHeads(config)

    def train(self, mode: bool = True) -> SupervisedNet:
        """Only the heads ever train: the trunk (and its BatchNorm statistics) stays ImageNet."""
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen trunk: (B, 3, H, W) -> stride-16 tap (B, 112, H/16, W/16), last (B, 1280,
        H/32, W/32)."""
        last, taps = self.backbone.features(x, stages=(SEG_STAGE,))
        return taps[SEG_STAGE], last

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tap, last = self.features(x)
        out = self.heads(tap, last.mean(dim=(2, 3)))
        out["last"] = last
        return out

    def activation_map(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-location defect logit (B, H/32, W/32) whose spatial mean is the image logit."""
        cls = self.heads.cls
        w = cls.weight[0]  # (1280 + 2,)
        cam = torch.einsum("bchw,c->bhw", out["last"], w[:HEAD_CHANNELS])
        const = out["seg_stats"] @ w[HEAD_CHANNELS:] + cls.bias[0]  # (B,)
        return cam + const[:, None, None]


class SupervisedExport(nn.Module):
    """What goes into the ONNX graph: score, raw_score, anomaly_map[, type_probs]."""

    def __init__(self, net: SupervisedNet, scale: ScoreScale, seg_map: bool):
        super().__init__()
        self.net, self.scale, self.seg_map = net.eval(), ScoreScaleLayer(scale), seg_map
        # Segmentation maps mark a pixel defective at probability 0.5 (what the mask loss
        # taught); activation maps share the image's calibrated threshold.
        self.map_scale = ScoreScaleLayer(SEG_MAP_SCALE if seg_map else scale)

    def forward(self, x: torch.Tensor):
        out = self.net(x)
        raw = torch.sigmoid(out["logit"])  # (B,)
        # (B, 1, H/16, W/16) segmentation, or (B, 1, H/32, W/32) class activation
        logits = out["seg"] if self.seg_map else self.net.activation_map(out)[:, None]
        amap = F.interpolate(torch.sigmoid(logits), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0]  # (B, H, W)
        result = (self.scale(raw), raw, self.map_scale(amap))
        if out["type_logits"] is not None:
            result += (torch.softmax(out["type_logits"], dim=1),)
        return result
