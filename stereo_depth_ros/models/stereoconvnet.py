"""``stereoconvnet``: the seeds' small fully convolutional baseline.

Input: left and right converted to grayscale and stacked as 2 channels; a contracting part
of conv + max-pool stages, then an expanding part of 2x upscaling (transposed conv) stages,
regressing disparity directly. No cost volume: it is the baseline the other nets must beat,
and the model the (left, left) sanity check of the seeds was first run on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.models.common import check_pair, conv_bn_relu, crop_to, deconv_bn_relu, pad_to_multiple

_GRAY = (0.299, 0.587, 0.114)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    w = x.new_tensor(_GRAY).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class StereoConvNet(nn.Module):
    """forward(left, right) -> {"disparity": (B, H, W), "confidence": None}."""

    def __init__(self, max_disparity: int = 128, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.max_disparity = max_disparity
        self.multiple = 2**depth
        chans = [2] + [width * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList(
            nn.Sequential(conv_bn_relu(chans[i], chans[i + 1]), conv_bn_relu(chans[i + 1], chans[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            deconv_bn_relu(chans[i + 1], chans[i + 1] // 2 if i else width) for i in range(depth)
        )
        self.head = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        check_pair(left, right)
        x = torch.cat([to_gray(left), to_gray(right)], 1) * 2.0 - 1.0
        x, size = pad_to_multiple(x, self.multiple)
        for stage in self.down:
            x = F.max_pool2d(stage(x), 2)
        for stage in reversed(self.up):
            x = stage(x)
        # Softplus keeps the output positive; the scale lets a unit output mean a large shift.
        disp = F.softplus(self.head(x)) * (self.max_disparity / 8)
        disp = crop_to(disp, size)[:, 0]
        out = {"disparity": disp, "confidence": None}
        if self.training:
            out["predictions"] = [disp]
        return out
