"""``dispnet``: DispNet (Mayer et al., CVPR 2016) with BatchNorm, as the seed course project used it.

Contracting part (conv1 .. conv6b, stride 2 each stage) and expanding part (upconv5 .. upconv1)
with skip connections and a disparity prediction at every scale (pr6 at 1/64 .. pr1 at 1/2),
each fed upsampled into the next finer stage. ``correlation=False`` is DispNetS (left and right
stacked as 6 channels); ``correlation=True`` is DispNetC (shared conv1/conv2 towers and a 1D
correlation layer at 1/4). BatchNorm after every conv: the seed measured EPE 109 without it
and 6.7 with it. ``width`` scales all channel counts (64 is the paper's network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.models.common import (
    check_pair,
    conv_bn_relu,
    correlation_volume,
    crop_to,
    deconv_bn_relu,
    normalize_image,
    pad_to_multiple,
)


class DispNet(nn.Module):
    """forward(left, right) -> {"disparity": (B, H, W), "confidence": None, ["predictions"]}.

    In training mode ``predictions`` holds all six scales upsampled to input size, finest
    (pr1) first, in input pixels.
    """

    multiple = 64

    def __init__(self, max_disparity: int = 128, width: int = 16, correlation: bool = False) -> None:
        super().__init__()
        self.max_disparity = max_disparity
        self.correlation = correlation
        c = [max(8, width * k) for k in (1, 2, 4, 8, 8, 16)]  # conv1..conv6 (paper, width 64: 64..1024)
        if correlation:
            self.conv1 = conv_bn_relu(3, c[0], 7, 2)
            self.conv2 = conv_bn_relu(c[0], c[1], 5, 2)
            self.num_disp = max(1, max_disparity // 4)
            self.redir = conv_bn_relu(c[1], c[1] // 4, 1)
            conv3_in = self.num_disp + c[1] // 4
        else:
            self.conv1 = conv_bn_relu(6, c[0], 7, 2)
            self.conv2 = conv_bn_relu(c[0], c[1], 5, 2)
            conv3_in = c[1]
        self.conv3 = nn.Sequential(conv_bn_relu(conv3_in, c[2], 5, 2), conv_bn_relu(c[2], c[2]))
        self.conv4 = nn.Sequential(conv_bn_relu(c[2], c[3], 3, 2), conv_bn_relu(c[3], c[3]))
        self.conv5 = nn.Sequential(conv_bn_relu(c[3], c[4], 3, 2), conv_bn_relu(c[4], c[4]))
        self.conv6 = nn.Sequential(conv_bn_relu(c[4], c[5], 3, 2), conv_bn_relu(c[5], c[5]))
        skips = [c[4], c[3], c[2], c[1], c[0]]  # conv5b, conv4b, conv3b, conv2, conv1
        ups = [c[4], c[3] // 2, c[2] // 2, c[1] // 2, c[0] // 2]  # upconv5..upconv1
        self.pr6 = nn.Conv2d(c[5], 1, 3, 1, 1)
        self.upconvs = nn.ModuleList()
        self.iconvs = nn.ModuleList()
        self.preds = nn.ModuleList()
        prev = c[5]
        for skip, up in zip(skips, ups, strict=True):
            self.upconvs.append(deconv_bn_relu(prev, up))
            self.iconvs.append(conv_bn_relu(up + 1 + skip, up))
            self.preds.append(nn.Conv2d(up, 1, 3, 1, 1))
            prev = up
        # predictions are made in units of max_disparity / 8 so initial outputs are on scale
        self.unit = max_disparity / 8

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        check_pair(left, right)
        b = left.shape[0]
        if self.correlation:
            x, size = pad_to_multiple(normalize_image(torch.cat([left, right], 0)), self.multiple)
            c1 = self.conv1(x)
            c2 = self.conv2(c1)
            corr = correlation_volume(c2[:b], c2[b:], self.num_disp)
            c1, c2 = c1[:b], c2[:b]
            c3 = self.conv3(torch.cat([corr, self.redir(c2)], 1))
        else:
            x, size = pad_to_multiple(normalize_image(torch.cat([left, right], 1)), self.multiple)
            c1 = self.conv1(x)
            c2 = self.conv2(c1)
            c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        c5 = self.conv5(c4)
        c6 = self.conv6(c5)
        pr = self.pr6(c6)
        preds = [pr]
        feat = c6
        for upconv, iconv, head, skip in zip(
            self.upconvs, self.iconvs, self.preds, [c5, c4, c3, c2, c1], strict=True
        ):
            up = upconv(feat)
            pr_up = F.interpolate(pr, size=up.shape[-2:], mode="bilinear", align_corners=False)
            feat = iconv(torch.cat([up, pr_up.to(up.dtype), skip], 1))
            pr = head(feat)
            preds.append(pr)
        full_size = x.shape[-2:]
        # every prediction is a disparity in input pixels (times `unit`), independent of its scale
        full = [
            crop_to(F.interpolate(p.float(), size=full_size, mode="bilinear", align_corners=False), size)[
                :, 0
            ]
            * self.unit
            for p in reversed(preds)
        ]
        out = {"disparity": F.relu(full[0]), "confidence": None}
        if self.training:
            out["predictions"] = full
        return out
