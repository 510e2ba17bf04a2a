"""``guided``: SGBM, made dense, with a learned decision of which of its values to trust.

Why this design: networks that match on their own learned features (``fast``, ``dispnet``)
learn what the synthetic textures look like and do not beat block matching on real
photographs when trained on a few CPU hours. SGBM's matching cost does not depend on what the
textures look like, and where it answers it is usually right. What it lacks is a dense answer
(holes: occlusions, textureless areas, the left border) and a good judgement of its own
mistakes (uniqueness and speckle checks keep many wrong values). So: SGBM is made to match the
left border too (:mod:`stereo_depth_ros.guidance`), run on both views for a left-right check,
this network decides from the left image, the hint, how well the right image warped by it
matches the left one and how well the two views agree, which SGBM values to keep; the rest is
filled by background interpolation (the KITTI devkit's rule, :mod:`stereo_depth_ros.disparity_fill`).
("Guided Stereo Matching", Poggi et al. 2019, puts sparse hints inside a network's cost volume;
here the network judges the hints.)

Measured on the way (docs/training.md): two earlier versions also predicted a correction of
the filled disparity, at 1/4 resolution, every pixel and then only the pixels not kept. Both
lowered the error on the real training pairs and raised it on the real validation pairs
(8.0 % -> 9.1 % and 8.8 % dense bad-3, against 8.0 % for the filled hint alone): what they learned
about filling does not carry over from synthetic scenes and five real ones. Their keep decisions
did carry over (7.8 %), so that is what this network does.

Pipeline: inputs at 1/2 resolution (left image, filled disparity, hint mask, photometric error,
left-right disagreement) -> space-to-depth to 1/4 (no convolution at full resolution: CPU time)
-> U-Net down to 1/16 (dilated blocks for a large receptive field) -> at 1/4 a keep logit and a
confidence logit, upsampled -> SGBM's values where kept, background interpolation elsewhere.
The network only sees disparities relative to the hint, so one set of weights serves any
search range; ``max_disparity`` is the model's default range (the backend runs larger ranges at
a reduced scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_depth_ros.disparity_fill import fill_background
from stereo_depth_ros.guidance import HintParams, sgbm_hints
from stereo_depth_ros.models.common import (
    ResBlock,
    box_mean,
    check_pair,
    conv_bn_relu,
    crop_to,
    normalize_image,
    pad_to_multiple,
    warp_right_to_left,
)

DISPARITY_SCALE = 16.0  # differences of disparities enter the network in units of 16 px
LR_CLIP = 8.0  # left-right disagreements above this (px) all look the same to the network
FACTOR = 4  # the network runs at 1/FACTOR of the input resolution
INPUT_SCALE = 2  # its inputs are computed at 1/INPUT_SCALE (a quarter of the CPU time of full size)


def compute_hints(
    left: torch.Tensor, right: torch.Tensor, max_disparity: float, params: HintParams
) -> torch.Tensor:
    """SGBM hints (B, 2, H, W) float32 on the CPU: left and right view, NaN where SGBM has none."""
    lefts = left.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    rights = right.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    hints = [sgbm_hints(lf, rt, max_disparity, params) for lf, rt in zip(lefts, rights, strict=True)]
    return torch.from_numpy(np.stack(hints))


def fill_hints(hint: torch.Tensor) -> torch.Tensor:
    """Background-filled copies (B, H, W) of (B, H, W) hints (CPU numpy work), dense."""
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
    """SGBM with a learned keep decision, filled by background interpolation; see the module
    docstring.

    forward(left, right, hint=None, max_disparity=None): (B, 3, H, W) in [0, 1]. ``hint``
    (B, 2, H, W) px with NaN holes (left and right view, :func:`compute_hints`) is computed with
    SGBM over ``max_disparity`` (default: the model's) when not given. Returns ``disparity`` and
    ``confidence`` (B, H, W); also ``keep_logit``, ``confidence_logit`` and ``hint`` (the left
    view) for the training loss.
    """

    multiple = 16
    takes_search_range = True
    self_supervised = False  # its output is not differentiable: photometric fine-tuning cannot apply

    def __init__(
        self,
        max_disparity: int = 128,
        channels: tuple[int, int, int] | list[int] = (24, 48, 64),
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
        # left rgb, hint minus local mean, hint mask, photometric error, left-right disagreement
        # and whether the right view has a value there, at 1/2: by space-to-depth to 1/4
        inputs = 8 * (FACTOR // INPUT_SCALE) ** 2
        self.stem = nn.Sequential(conv_bn_relu(inputs, c4, 1), conv_bn_relu(c4, c4, 3))
        self.down8 = _Down(c4, c8)
        self.down16 = _Down(c8, c16)
        self.context = nn.Sequential(*[ResBlock(c16, 2 ** (i % 3)) for i in range(bottleneck_blocks)])
        self.up8 = _Up(c16, c8, c8)
        self.up4 = _Up(c8, c4, c4)
        self.keep = nn.Conv2d(c4, 1, 3, 1, 1)
        self.confidence = nn.Conv2d(c4, 1, 3, 1, 1)
        nn.init.constant_(self.keep.bias, 3.0)  # starts by keeping SGBM's values

    def _inputs(self, left: torch.Tensor, right: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
        """The network's input at 1/INPUT_SCALE resolution (disparities in those pixels)."""
        left, right = F.avg_pool2d(left, INPUT_SCALE), F.avg_pool2d(right, INPUT_SCALE)
        hint = hint[..., ::INPUT_SCALE, ::INPUT_SCALE] / INPUT_SCALE
        view, right_view = hint[:, :1], hint[:, 1:]
        base = fill_hints(view[:, 0]).to(left.device)[:, None]
        known = torch.isfinite(view).to(left.dtype)
        photo = (warp_right_to_left(right, base) - left).abs().mean(1, keepdim=True)
        # the right view's disparity where each left pixel's match lands (nearest: no mixing)
        back = warp_right_to_left(torch.nan_to_num(right_view, nan=-1.0), base, mode="nearest")
        xs = torch.arange(base.shape[-1], device=base.device, dtype=base.dtype)
        back_known = ((back >= 0) & (xs - base >= 0)).to(left.dtype)  # the match is in the image
        disagree = torch.where((known * back_known) > 0, (base - back).abs(), torch.zeros_like(base))
        local = box_mean(base, 5)
        scale = INPUT_SCALE / DISPARITY_SCALE
        return torch.cat([normalize_image(left), (base - local) * scale, known, photo * 4.0,
                          (disagree * INPUT_SCALE).clamp(max=LR_CLIP) / 4.0, back_known], 1)

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
        size = left.shape[-2:]
        padded = [pad_to_multiple(x, self.multiple)[0] for x in (left, right, hint)]
        inp = self._inputs(*padded)

        e4 = self.stem(F.pixel_unshuffle(inp, FACTOR // INPUT_SCALE))
        e8 = self.down8(e4)
        e16 = self.context(self.down16(e8))
        h = self.up4(self.up8(e16, e8), e4)

        keep_logit = crop_to(_upsample(self.keep(h)), size)[:, 0]
        conf_logit = crop_to(_upsample(self.confidence(h)), size)[:, 0]
        trusted = (keep_logit > 0) & torch.isfinite(hint[:, 0])
        kept = torch.where(trusted, hint[:, 0], torch.full_like(keep_logit, float("nan")))
        disparity = fill_hints(kept).to(left.device)
        return {"disparity": disparity, "confidence": torch.sigmoid(conf_logit), "keep_logit": keep_logit,
                "confidence_logit": conf_logit, "hint": hint[:, 0]}


def _upsample(logit: torch.Tensor) -> torch.Tensor:
    return F.interpolate(logit.float(), scale_factor=FACTOR, mode="bilinear", align_corners=False)
