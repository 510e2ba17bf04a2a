"""Images a person would rather look at than read: colorized disparity/depth and error maps."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 RGB; NaN/inf pixels are black. Range from data if unset."""
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if vmin is None:
        vmin = float(values[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(values[finite].max()) if finite.any() else 1.0
    scale = 255.0 / max(vmax - vmin, 1e-6)
    norm = np.clip((np.where(finite, values, vmin) - vmin) * scale, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(norm, colormap), cv2.COLOR_BGR2RGB)
    rgb[~finite] = 0
    return rgb


def error_map(pred: np.ndarray, gt: np.ndarray, max_error: float = 5.0) -> np.ndarray:
    """|pred - gt| coloured from 0 (blue) to ``max_error`` px (red); no GT is black, a
    missing prediction where GT exists is white."""
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    has_gt = np.isfinite(gt) & (gt > 0)
    err = np.where(has_gt & np.isfinite(pred), np.abs(pred - gt), np.nan)
    rgb = colorize(err, 0.0, max_error)
    rgb[has_gt & ~np.isfinite(pred)] = 255
    return rgb


def save_rgb(path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (PNG by extension); raises OSError when it cannot."""
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")
