"""One interface for every way of computing disparity (OpenCV SGBM, learned networks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


class BackendError(RuntimeError):
    """A backend that cannot be built or cannot process a frame; the message says why."""


@dataclass
class DisparityResult:
    """What a backend returns for one rectified pair.

    shift: (H, W) float32 match shift x_left - x_right in pixels at input resolution, NaN
        where the backend has no estimate; a torch tensor on the backend's device.
    confidence: (H, W) float32 in [0, 1] on the same device, or None.
    min_disparity / max_disparity: the shift range the backend can report (DisparityImage
        min/max before the cx adjustment); delta_d: the smallest step it resolves.
    valid_window: (x_offset, y_offset, width, height) of the region where shifts can be valid.
    """

    shift: torch.Tensor
    confidence: torch.Tensor | None
    min_disparity: float
    max_disparity: float
    delta_d: float
    valid_window: tuple[int, int, int, int]


class StereoBackend(Protocol):
    """Computes disparity for a rectified pair of RGB uint8 images (H, W, 3)."""

    name: str
    device: torch.device

    def compute(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> DisparityResult: ...


def check_pair(left_rgb: np.ndarray, right_rgb: np.ndarray) -> None:
    """BackendError unless both images are (H, W, 3) uint8 RGB of the same size."""
    if left_rgb.shape != right_rgb.shape:
        raise BackendError(f"left {left_rgb.shape} and right {right_rgb.shape} images differ in size")
    if left_rgb.ndim != 3 or left_rgb.shape[2] != 3 or left_rgb.dtype != np.uint8:
        raise BackendError(f"expected (H, W, 3) uint8 RGB images, got {left_rgb.shape} {left_rgb.dtype}")
