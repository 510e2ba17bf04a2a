"""``fast``: a compact cost-volume stereo network sized for real time on a CPU or a small GPU.

Pipeline: shared 2D feature extractor (1/2 and 1/4 resolution) -> group-wise correlation
cost volume at 1/4 over ``max_disparity / 4`` levels -> 2D hourglass aggregation of the
volume with the left features (no 3D convolutions, they are slow on CPUs) -> soft-argmin
(sub-pixel) disparity at 1/4 -> image-guided refinement at 1/2 (residual + confidence) ->
learned convex (edge-aware) upsampling to full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.models.common import (
    ResBlock,
    check_pair,
    conv_bn_relu,
    convex_upsample,
    correlation_volume,
    crop_to,
    normalize_image,
    pad_to_multiple,
    soft_argmin,
    upsample_disparity,
)


class _Features(nn.Module):
    def __init__(self, c2: int, c4: int, blocks: int) -> None:
        super().__init__()
        self.stage2 = nn.Sequential(conv_bn_relu(3, c2, 5, 2), conv_bn_relu(c2, c2, 3))
        self.stage4 = nn.Sequential(conv_bn_relu(c2, c4, 3, 2), *[ResBlock(c4) for _ in range(blocks)])
        self.match = nn.Conv2d(c4, c4, 1)  # matching features, no ReLU: the correlation needs signs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.stage2(x)
        f4 = self.stage4(f2)
        return f2, f4, self.match(f4)


class _Hourglass(nn.Module):
    """1/4 -> 1/8 -> 1/16 -> 1/4 encoder-decoder with skips, outputs cost logits per level.

    The full-resolution (1/4) part is kept thin (1x1 fusions) because it dominates CPU time.
    """

    def __init__(self, cin: int, c: int, num_disp: int) -> None:
        super().__init__()
        c1, c2 = c * 3 // 2, c * 2
        self.inp = nn.Sequential(conv_bn_relu(cin, c, 1), conv_bn_relu(c, c, 3))
        self.down1 = nn.Sequential(conv_bn_relu(c, c1, 3, 2), conv_bn_relu(c1, c1))
        self.down2 = nn.Sequential(conv_bn_relu(c1, c2, 3, 2), conv_bn_relu(c2, c2))
        self.up2 = conv_bn_relu(c2 + c1, c1)
        self.up1 = conv_bn_relu(c1 + c, c, 1)
        self.out = nn.Conv2d(c, num_disp, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.inp(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        u = F.interpolate(x2, size=x1.shape[-2:], mode="bilinear", align_corners=False)
        u = self.up2(torch.cat([u, x1], 1))
        u = F.interpolate(u, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        u = self.up1(torch.cat([u, x0], 1))
        return self.out(u)


class _Refine(nn.Module):
    """Image-guided refinement at 1/2: disparity residual, confidence logit, upsampling mask."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, c, 3),
            ResBlock(c, 2),
        )
        self.residual = nn.Conv2d(c, 1, 3, 1, 1)
        self.confidence = nn.Conv2d(c, 1, 3, 1, 1)
        self.mask = nn.Conv2d(c, 9 * 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.residual(h), self.confidence(h), self.mask(h)


class FastStereo(nn.Module):
    """Compact cost-volume network; see the module docstring.

    forward(left, right): (B, 3, H, W) in [0, 1], any H, W. Returns a dict with
    ``disparity`` (B, H, W) pixels, ``confidence`` (B, H, W) in [0, 1]; in training mode also
    ``predictions`` (list of (B, H, W), finest first) and ``confidence_logit`` (B, H, W).
    """

    multiple = 16

    def __init__(
        self,
        max_disparity: int = 128,
        feat_half: int = 16,
        feat_quarter: int = 32,
        feat_blocks: int = 1,
        groups: int = 4,
        agg_channels: int = 32,
        refine_channels: int = 16,
    ) -> None:
        super().__init__()
        if max_disparity % 4 or max_disparity < 8:
            raise ValueError(f"max_disparity must be a multiple of 4 and >= 8, got {max_disparity}")
        self.max_disparity = max_disparity
        self.num_disp = max_disparity // 4
        self.groups = groups
        self.features = _Features(feat_half, feat_quarter, feat_blocks)
        self.context = nn.Conv2d(feat_quarter, 16, 1)
        self.aggregate = _Hourglass(groups * self.num_disp + 16, agg_channels, self.num_disp)
        # refinement input: left 1/2 features, disparity (scaled), peak probability
        self.refine = _Refine(feat_half + 2, refine_channels)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        check_pair(left, right)
        b = left.shape[0]
        x, size = pad_to_multiple(normalize_image(torch.cat([left, right], 0)), self.multiple)
        f2, f4, m4 = self.features(x)
        cost = correlation_volume(m4[:b], m4[b:], self.num_disp, self.groups)
        logits = self.aggregate(torch.cat([cost, self.context(f4[:b])], 1))
        d4, prob = soft_argmin(logits)
        peak = prob.max(dim=1, keepdim=True).values

        half = f2.shape[-2:]
        d2 = upsample_disparity(d4, half)
        peak2 = F.interpolate(peak, size=half, mode="bilinear", align_corners=False)
        scale = self.max_disparity / 2
        inp = torch.cat([f2[:b], (d2 / scale).to(f2.dtype), peak2.to(f2.dtype)], 1)
        residual, conf_logit, mask = self.refine(inp)
        d2r = F.relu(d2 + residual.float())
        full = convex_upsample(d2r, mask, 2)
        conf_logit = F.interpolate(conf_logit.float(), scale_factor=2, mode="bilinear", align_corners=False)

        disparity = crop_to(full, size)[:, 0]
        conf_logit = crop_to(conf_logit, size)[:, 0]
        out = {"disparity": disparity, "confidence": torch.sigmoid(conf_logit)}
        if self.training:
            full_size = x.shape[-2:]
            out["predictions"] = [
                disparity,
                crop_to(upsample_disparity(d2r, full_size), size)[:, 0],
                crop_to(upsample_disparity(d4, full_size), size)[:, 0],
            ]
            out["confidence_logit"] = conf_logit
        return out
