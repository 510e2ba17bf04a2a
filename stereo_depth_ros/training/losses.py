"""Losses: supervised (multi-scale EPE with DispNet's schedule, smooth L1 + confidence) and
self-supervised (photometric SSIM + L1, edge-aware smoothness, left-right consistency)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stereo_depth_ros.models.common import warp_right_to_left

# DispNet's coarse-to-fine loss weight schedule: rows are phases over training, columns the
# predictions finest (pr1) first. Early on the coarse predictions carry the loss; later the
# weight moves to the fine ones (Mayer et al. 2016, Sec. 4).
DISPNET_SCHEDULE = (
    (0.0, 0.0, 0.0, 0.2, 0.5, 1.0),
    (0.0, 0.0, 0.2, 0.5, 1.0, 0.5),
    (0.0, 0.2, 0.5, 1.0, 0.5, 0.2),
    (0.2, 0.5, 1.0, 0.5, 0.2, 0.0),
    (1.0, 0.5, 0.2, 0.0, 0.0, 0.0),
)


def valid_mask(gt: torch.Tensor, max_disparity: float | None = None) -> torch.Tensor:
    mask = torch.isfinite(gt) & (gt > 0)
    if max_disparity is not None:
        mask &= gt <= max_disparity
    return mask


def dispnet_weights(step: int, total_steps: int, scales: int = 6) -> list[float]:
    """Loss weights for the ``scales`` predictions (finest first) at ``step`` of ``total_steps``."""
    phase = min(int(len(DISPNET_SCHEDULE) * step / max(total_steps, 1)), len(DISPNET_SCHEDULE) - 1)
    row = DISPNET_SCHEDULE[phase]
    return list(row[:scales]) if scales <= len(row) else list(row) + [0.0] * (scales - len(row))


def epe(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean end-point error over ``mask`` (zero when the mask is empty, with a gradient path)."""
    if not mask.any():
        return pred.sum() * 0.0
    return (pred.float() - gt)[mask].abs().mean()


def multiscale_epe(
    predictions: list[torch.Tensor],
    gt: torch.Tensor,
    weights: list[float],
    max_disparity: float | None = None,
) -> torch.Tensor:
    """Weighted sum of the EPE of every prediction (all at input resolution, finest first)."""
    mask = valid_mask(gt, max_disparity)
    total = predictions[0].sum() * 0.0
    for pred, w in zip(predictions, weights, strict=False):
        if w > 0:
            total = total + w * epe(pred, gt, mask)
    return total


def smooth_l1_multiscale(
    predictions: list[torch.Tensor],
    gt: torch.Tensor,
    weights: tuple[float, ...] = (1.0, 0.7, 0.5),
    max_disparity: float | None = None,
) -> torch.Tensor:
    mask = valid_mask(gt, max_disparity)
    total = predictions[0].sum() * 0.0
    if not mask.any():
        return total
    for pred, w in zip(predictions, weights, strict=False):
        total = total + w * F.smooth_l1_loss(pred.float()[mask], gt[mask])
    return total


def confidence_loss(
    conf_logit: torch.Tensor,
    pred: torch.Tensor,
    gt: torch.Tensor,
    threshold: float = 1.0,
    max_disparity: float | None = None,
) -> torch.Tensor:
    """BCE teaching the confidence to predict whether the disparity error is below ``threshold`` px."""
    mask = valid_mask(gt, max_disparity)
    if not mask.any():
        return conf_logit.sum() * 0.0
    target = ((pred.detach().float() - gt).abs() < threshold).float()
    return F.binary_cross_entropy_with_logits(conf_logit.float()[mask], target[mask])


def fast_loss(
    out: dict, gt: torch.Tensor, max_disparity: float | None = None, conf_weight: float = 0.1
) -> tuple[torch.Tensor, dict[str, float]]:
    """Smooth L1 on the full, 1/2 and 1/4 soft-argmin outputs + confidence BCE."""
    disp_loss = smooth_l1_multiscale(out["predictions"], gt, max_disparity=max_disparity)
    total = disp_loss
    parts = {"disp": float(disp_loss.detach())}
    if out.get("confidence_logit") is not None and conf_weight > 0:
        c = confidence_loss(out["confidence_logit"], out["disparity"], gt, max_disparity=max_disparity)
        total = total + conf_weight * c
        parts["conf"] = float(c.detach())
    return total, parts


def guided_loss(
    out: dict, gt: torch.Tensor, max_disparity: float | None = None, conf_weight: float = 0.1,
    keep_within: float = 3.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE teaching the keep head which SGBM values are within ``keep_within`` px of the ground
    truth (over pixels that have both), + ``conf_weight`` x the confidence BCE of the output."""
    mask = valid_mask(gt, max_disparity)
    known = mask & torch.isfinite(out["hint"])
    if not known.any():
        return out["keep_logit"].sum() * 0.0, {"keep": 0.0}
    target = ((out["hint"] - gt).abs() <= keep_within).float()
    total = F.binary_cross_entropy_with_logits(out["keep_logit"].float()[known], target[known])
    parts = {"keep": float(total.detach())}
    if conf_weight > 0:
        c = confidence_loss(out["confidence_logit"], out["disparity"], gt, max_disparity=max_disparity)
        total = total + conf_weight * c
        parts["conf"] = float(c.detach())
    return total, parts


# --------------------------------------------------------------------------- self-supervised


def warp_valid(disparity: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: left pixels whose match x - d lies inside the right image."""
    w = disparity.shape[-1]
    xs = torch.arange(w, device=disparity.device, dtype=disparity.dtype)
    return (xs - disparity >= 0) & (xs - disparity <= w - 1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM dissimilarity (1 - SSIM) / 2 over 3x3 windows, (B, C, H, W) in [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    mu_x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    mu_y = F.avg_pool2d(y, 3, 1, 1, count_include_pad=False)
    sx = F.avg_pool2d(x * x, 3, 1, 1, count_include_pad=False) - mu_x**2
    sy = F.avg_pool2d(y * y, 3, 1, 1, count_include_pad=False) - mu_y**2
    sxy = F.avg_pool2d(x * y, 3, 1, 1, count_include_pad=False) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sx + sy + c2)
    return ((1 - num / den) / 2).clamp(0, 1)


def photometric_loss(
    left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor, alpha: float = 0.85
) -> torch.Tensor:
    """alpha * SSIM + (1 - alpha) * L1 between left and the disparity-warped right image."""
    recon = warp_right_to_left(right, disparity)
    per_pixel = alpha * ssim(recon, left).mean(1) + (1 - alpha) * (recon - left).abs().mean(1)
    mask = warp_valid(disparity if disparity.dim() == 3 else disparity[:, 0])
    if not mask.any():
        return per_pixel.sum() * 0.0
    return per_pixel[mask].mean()


def smoothness_loss(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware first-order smoothness of the mean-normalised disparity (Godard et al. 2017)."""
    if disparity.dim() == 3:
        disparity = disparity.unsqueeze(1)
    d = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-6)
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs()
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-10 * ix)).mean() + (dy * torch.exp(-10 * iy)).mean()


def left_right_consistency(disp_left: torch.Tensor, disp_right: torch.Tensor) -> torch.Tensor:
    """|d_L(x) - d_R(x - d_L(x))| over pixels whose match is inside the image.

    ``disp_right`` is the right-view disparity (positive, right pixel x matches left x + d).
    """
    if disp_left.dim() == 3:
        disp_left = disp_left.unsqueeze(1)
    if disp_right.dim() == 3:
        disp_right = disp_right.unsqueeze(1)
    sampled = warp_right_to_left(disp_right, disp_left)
    mask = warp_valid(disp_left[:, 0])
    diff = (disp_left - sampled)[:, 0]
    if not mask.any():
        return diff.sum() * 0.0
    return diff.abs()[mask].mean()
