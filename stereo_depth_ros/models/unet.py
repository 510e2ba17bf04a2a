"""U-Net for the nearest-object mask (the seed project's design, wired to the stereo output).

Per level: two 3x3 convolutions, each followed by (optional) BatchNorm and ELU; 2x2 max-pool
down; 2x2 transposed-convolution up, concatenated with the encoder's skip connection; dropout
at the bottleneck and in the decoder. The input is the left image (gray or RGB) plus the
disparity normalized by the maximum disparity, optionally a disparity-validity channel, the
disparity relative to the frame's own maximum (global context a small receptive field lacks:
which surfaces are the nearest in *this* frame), a confidence channel and the classical
baseline's mask as a hint; the output is one logit per pixel ("belongs to the nearest object").
Any input size works: the forward pass pads to a multiple of 2**(levels-1) and crops back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_MODES = ("gray", "rgb")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and input description; stored in checkpoints as a plain dict."""

    image_mode: str = "gray"  # "gray" (1 channel) or "rgb" (3 channels)
    use_valid: bool = True  # a channel that is 1 where the disparity is finite and > 0
    use_relative: bool = True  # disparity / the frame's maximum: "how near, compared with the rest"
    use_confidence: bool = False  # the stereo backend's confidence as one more channel
    # the classical baseline's mask (threshold near the peak disparity + largest connected
    # component) as a hint: a component choice is global, which convolutions cannot do
    use_baseline: bool = False
    baseline_band: float = 0.15
    base_channels: int = 16
    levels: int = 4  # number of resolutions (levels - 1 poolings)
    dropout: float = 0.1
    batch_norm: bool = True

    def __post_init__(self) -> None:
        if self.image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, not {self.image_mode!r}")
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2 (got {self.levels})")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1 (got {self.base_channels})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")

    @property
    def image_channels(self) -> int:
        return 1 if self.image_mode == "gray" else 3

    @property
    def in_channels(self) -> int:
        flags = (self.use_valid, self.use_relative, self.use_confidence, self.use_baseline)
        extra = sum(int(f) for f in flags)
        return self.image_channels + 1 + extra

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown U-Net config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ELU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """(B, in_channels, H, W) -> (B, 1, H, W) logits of the nearest-object mask."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        widths = [c.base_channels * 2**i for i in range(c.levels)]
        self.down = nn.ModuleList()
        cin = c.in_channels
        for w in widths:
            self.down.append(_DoubleConv(cin, w, c.batch_norm))
            cin = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_skip, w_deep in zip(reversed(widths[:-1]), reversed(widths[1:]), strict=True):
            self.up.append(nn.ConvTranspose2d(w_deep, w_skip, 2, stride=2))
            self.merge.append(_DoubleConv(2 * w_skip, w_skip, c.batch_norm))
        self.dropout = nn.Dropout2d(c.dropout) if c.dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def multiple(self) -> int:
        return 2 ** (self.config.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"U-Net expects (B, {self.config.in_channels}, H, W) input, got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for up, merge in zip(self.up, self.merge, strict=True):
            x = up(x)
            x = merge(torch.cat((x, skips.pop()), dim=1))
            x = self.dropout(x)
        return self.head(x)[..., :h, :w]


def build_unet(config: dict[str, Any] | UNetConfig | None = None) -> UNet:
    """Builder for the model registry: a config dict (as stored in checkpoints) -> UNet."""
    if config is None or isinstance(config, UNetConfig):
        return UNet(config)
    return UNet(UNetConfig.from_dict(dict(config)))
