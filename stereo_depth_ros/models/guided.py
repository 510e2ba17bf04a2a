"""``guided``: a learned refinement and completion of classical matching (SGBM).

Why this design: networks that match on their own learned features (``fast``, ``dispnet``)
learn what the synthetic textures look like and do not beat block matching on real
photographs when trained on a few CPU hours. SGBM's matching cost does not depend on what the
textures look like, and where it answers it is usually right; where it fails (holes:
occlusions, textureless areas, the left border; and its speckles) the answer follows from the
image and the surrounding disparities. This network takes SGBM's disparity (with the left
border matched too, see :mod:`stereo_depth_ros.guidance`), its holes filled by background
interpolation (the devkits' rule, :mod:`stereo_depth_ros.disparity_fill`), and from the left
image, the hint, where the hint exists, and how well the right image warped by it matches the
left one ("Guided Stereo Matching", Poggi et al. 2019, uses sparse hints inside a cost volume;
here they are the starting point of a 2D refinement) it predicts two things: for every SGBM
value, whether to keep it (exactly: a first version that corrected every pixel smeared the
1/4-resolution corrections over right values and lost more pixels than it fixed, on real and
synthetic validation alike), and a correction of the filled value for the pixels not kept.

Pipeline: full-resolution inputs (left image, filled disparity, hint mask, photometric error)
-> space-to-depth to 1/4 (no full-resolution detail is lost, and no convolution runs at full
resolution: CPU time) -> U-Net down to 1/16 (dilated blocks for a large receptive field)
-> at 1/4: a keep logit, a disparity correction, a confidence logit and convex-upsampling
weights -> SGBM's value where kept, else the filled hint plus the correction upsampled
edge-aware, at full resolution. (Training blends the two with the keep probability.)
The network is fully convolutional and its input is the disparity in pixels, so one set of
weights serves any search range; ``max_disparity`` is the largest range it was trained for
(beyond it, the backend runs at a reduced scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.disparity_fill import fill_background
from stereo_depth_ros.guidance import HintParams, sgbm_hint
from stereo_depth_ros.models.common import (
    ResBlock,
    check_pair,
    conv_bn_relu,
    convex_upsample,
    crop_to,
    normalize_image,
    pad_to_multiple,
    warp_right_to_left,
)

DISPARITY_SCALE = 64.0  # disparities enter the network in units of 64 px
RESIDUAL_SCALE = 2.0  # the correction head's output unit, in px at 1/4 resolution
FACTOR = 4  # the network runs at 1/FACTOR of the input resolution


def compute_hints(
    left: torch.Tensor, right: torch.Tensor, max_disparity: float, params: HintParams
) -> torch.Tensor:
    """SGBM hints (B, H, W) float32 on the CPU, NaN where SGBM answers nothing."""
    lefts = left.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    rights = right.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    hints = [sgbm_hint(lf, rt, max_disparity, params) for lf, rt in zip(lefts, rights, strict=True)]
    return torch.from_numpy(np.stack(hints))


def fill_hints(hint: torch.Tensor) -> torch.Tensor:
    """Background-filled copies (B, H, W) of the hints (CPU numpy work), dense."""
    arr = hint.detach().float().cpu().numpy()
    return torch.from_numpy(np.stack([fill_background(h, complete=True) for h in arr]))


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(conv_bn_relu(cin, cout, 3, 2), conv_bn_relu(cout, cout, 3))


class _Up(nn.Module):
    """Upsample to the skip's size, fuse (1x1), then one 3x3 conv."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.fuse = nn.Sequential(conv_bn_relu(cin + cskip, cout, 1), conv_bn_relu(cout, cout, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], 1))


class GuidedStereo(nn.Module):
    """SGBM-guided refinement network; see the module docstring.

    forward(left, right, hint=None, max_disparity=None): (B, 3, H, W) in [0, 1]. ``hint``
    (B, H, W) px with NaN holes is computed with SGBM over ``max_disparity`` (default: the
    model's) when not given. Returns ``disparity`` and ``confidence`` (B, H, W); in training
    mode also ``predictions`` and ``confidence_logit``.
    """

    multiple = 16
    takes_search_range = True

    def __init__(
        self,
        max_disparity: int = 128,
        channels: tuple[int, int, int] | list[int] = (32, 48, 64),
        bottleneck_blocks: int = 2,
        hint: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if max_disparity < 16:
            raise ValueError(f"max_disparity must be >= 16, got {max_disparity}")
        if len(channels) != 3:
            raise ValueError(f"channels must list 3 widths (1/4, 1/8, 1/16), got {list(channels)}")
        self.max_disparity = int(max_disparity)
        self.hint_params = HintParams.from_dict(hint)
        c4, c8, c16 = (int(c) for c in channels)
        # left rgb, filled hint, hint mask and photometric error, by space-to-depth
        inputs = 6 * FACTOR * FACTOR
        self.stem = nn.Sequential(conv_bn_relu(inputs, c4, 1), conv_bn_relu(c4, c4, 3))
        self.down8 = _Down(c4, c8)
        self.down16 = _Down(c8, c16)
        self.context = nn.Sequential(*[ResBlock(c16, 2 ** (i % 3)) for i in range(bottleneck_blocks)])
        self.up8 = _Up(c16, c8, c8)
        self.up4 = _Up(c8, c4, c4)
        self.residual = nn.Conv2d(c4, 1, 3, 1, 1)
        self.confidence = nn.Conv2d(c4, 1, 3, 1, 1)
        self.keep = nn.Conv2d(c4, 1, 3, 1, 1)
        self.mask = nn.Conv2d(c4, 9 * FACTOR * FACTOR, 1)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)
        nn.init.constant_(self.keep.bias, 3.0)  # starts by keeping SGBM's values

    def forward(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        hint: torch.Tensor | None = None,
        max_disparity: float | None = None,
    ) -> dict:
        check_pair(left, right)
        search = float(max_disparity or self.max_disparity)
        if hint is None:
            hint = compute_hints(left, right, search, self.hint_params)
        hint = hint.to(left.device, torch.float32)
        base = fill_hints(hint).to(left.device)[:, None]
        known = torch.isfinite(hint)[:, None].to(left.dtype)
        photo = (warp_right_to_left(right, base) - left).abs().mean(1, keepdim=True)
        inp = torch.cat([normalize_image(left), base / DISPARITY_SCALE, known, photo * 4.0], 1)
        inp, size = pad_to_multiple(inp, self.multiple)

        e4 = self.stem(F.pixel_unshuffle(inp, FACTOR))
        e8 = self.down8(e4)
        e16 = self.context(self.down16(e8))
        h = self.up4(self.up8(e16, e8), e4)

        correction = convex_upsample(self.residual(h).float() * RESIDUAL_SCALE, self.mask(h), FACTOR)
        filled = F.relu(crop_to(correction, size)[:, 0] + base[:, 0])
        conf_logit = crop_to(_upsample(self.confidence(h)), size)[:, 0]
        keep_logit = crop_to(_upsample(self.keep(h)), size)[:, 0]
        known = known[:, 0]
        if self.training:  # differentiable: blend with the probability of keeping
            keep = torch.sigmoid(keep_logit) * known
            disparity = keep * base[:, 0] + (1 - keep) * filled
        else:
            disparity = torch.where((keep_logit > 0) & (known > 0), base[:, 0], filled)
        out = {"disparity": disparity, "confidence": torch.sigmoid(conf_logit)}
        if self.training:
            out["predictions"] = [disparity]
            out["confidence_logit"] = conf_logit
            out["keep_logit"], out["hint"] = keep_logit, hint
        return out


def _upsample(logit: torch.Tensor) -> torch.Tensor:
    return F.interpolate(logit.float(), scale_factor=FACTOR, mode="bilinear", align_corners=False)
