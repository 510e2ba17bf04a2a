"""Building blocks shared by the stereo networks: padding, conv blocks, cost volumes, soft-argmin."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ImageNet-like statistics; the networks see roughly zero-mean, unit-variance inputs.
_MEAN = 0.45
_STD = 0.225


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> roughly standardized values."""
    return (x - _MEAN) / _STD


def check_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    """Raise ValueError with a clear message unless left/right are matching (B, C, H, W) batches."""
    if left.dim() != 4 or right.dim() != 4:
        raise ValueError(
            f"expected (B, C, H, W) tensors, got left {tuple(left.shape)} right {tuple(right.shape)}"
        )
    if left.shape != right.shape:
        raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} differ in shape")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the right and bottom (replicating the border) to a multiple of ``multiple``.

    Returns the padded tensor and the original (H, W) for :func:`crop_to`. Padding only on
    the right/bottom keeps pixel coordinates, so disparities are unchanged.
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return x[..., :h, :w]


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def deconv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """2x upsampling (transposed 4x4 conv, stride 2) + BN + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity skip."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, 3, 1, dilation)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


def correlation_volume(
    left: torch.Tensor, right: torch.Tensor, num_disp: int, groups: int = 1
) -> torch.Tensor:
    """Group-wise correlation cost volume (Guo et al. 2019); ``groups=1`` is plain correlation.

    left/right: (B, C, H, W) features. Returns (B, groups * num_disp, H, W), channel
    ``g * num_disp + d`` holding the mean over group g of left(x) * right(x - d), zero where
    x - d falls outside the right image.
    """
    b, c, h, w = left.shape
    if c % groups:
        raise ValueError(f"{c} feature channels do not split into {groups} groups")
    lg = left.reshape(b, groups, c // groups, h, w)
    rg = right.reshape(b, groups, c // groups, h, w)
    vol = left.new_zeros(b, groups, num_disp, h, w)
    for d in range(num_disp):
        if d == 0:
            vol[:, :, 0] = (lg * rg).mean(dim=2)
        elif d < w:
            vol[:, :, d, :, d:] = (lg[..., d:] * rg[..., :-d]).mean(dim=2)
    return vol.reshape(b, groups * num_disp, h, w)


def soft_argmin(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected disparity under softmax(logits) over dim 1 (GC-Net soft argmin, sub-pixel).

    Returns (disparity (B, 1, H, W), probabilities (B, D, H, W)); computed in fp32 for stability.
    """
    prob = torch.softmax(logits.float(), dim=1)
    values = torch.arange(prob.shape[1], device=prob.device, dtype=prob.dtype).view(1, -1, 1, 1)
    return (prob * values).sum(dim=1, keepdim=True), prob


def convex_upsample(disp: torch.Tensor, mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample (B, 1, H, W) by ``factor`` as a learned convex combination of 3x3 neighbours.

    ``mask``: (B, 9 * factor * factor, H, W) logits predicted from image features, so the
    weights follow image edges (RAFT-style). Disparity values are scaled by ``factor``.
    """
    b, _, h, w = disp.shape
    weights = torch.softmax(mask.float().view(b, 1, 9, factor, factor, h, w), dim=2)
    patches = F.unfold(disp.float() * factor, kernel_size=3, padding=1).view(b, 1, 9, 1, 1, h, w)
    up = (weights * patches).sum(dim=2)  # (B, 1, f, f, H, W)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 1, h * factor, w * factor)


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size`` x ``size`` window of (B, 1, H, W) ``x``, over the part of the window
    inside the image (avg_pool2d with count_include_pad=False); OpenCV's box filter on the CPU
    (several times faster there, same values up to rounding)."""
    if x.device.type != "cpu" or x.requires_grad or x.shape[1] != 1:
        return F.avg_pool2d(x, size, 1, size // 2, count_include_pad=False)
    import cv2

    ones = np.ones(x.shape[-2:], np.float32)
    counts = cv2.boxFilter(ones, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    sums = [cv2.boxFilter(np.ascontiguousarray(plane), -1, (size, size), normalize=False,
                          borderType=cv2.BORDER_CONSTANT) for plane in x[:, 0].float().numpy()]
    return torch.from_numpy(np.stack(sums) / counts)[:, None].to(x.dtype)


def upsample_disparity(disp: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (B, 1, h, w) disparity to ``size``, scaling values by the width ratio."""
    scale = size[1] / disp.shape[-1]
    return F.interpolate(disp, size=size, mode="bilinear", align_corners=False) * scale


def warp_right_to_left(right: torch.Tensor, disparity: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``right`` (B, C, H, W) at x - d for every left pixel: reconstructs the left view.

    ``disparity``: (B, H, W) or (B, 1, H, W) in pixels. Out-of-image samples read zeros
    (padding_mode='zeros'), which the photometric loss masks out (training.losses.warp_valid).
    ``mode`` "nearest" samples without mixing neighbours (for maps with invalid values).
    """
    if disparity.dim() == 3:
        disparity = disparity.unsqueeze(1)
    b, _, h, w = right.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=right.device, dtype=right.dtype),
        torch.arange(w, device=right.device, dtype=right.dtype),
        indexing="ij",
    )
    x_src = xs.unsqueeze(0) - disparity[:, 0].to(right.dtype)
    grid = torch.stack([2 * x_src / max(w - 1, 1) - 1, (2 * ys / max(h - 1, 1) - 1).expand(b, h, w)], dim=-1)
    return F.grid_sample(right, grid, mode=mode, padding_mode="zeros", align_corners=True)
