"""Tiny stereo scenes for ROS-side tests (textured planes/steps with exact disparity).

Only for tests of the node plumbing; the package's generator (stereo_depth_ros.data) is the
real scene source. A plane at constant disparity d is a texture seen through two windows
d pixels apart: right[x] = left[x + d].
"""

from __future__ import annotations

import cv2
import numpy as np


def texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (3, 3), 0.8)


def plane_pair(height: int, width: int, disparity: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    tex = texture(height, width + disparity, seed)
    return np.ascontiguousarray(tex[:, :width]), np.ascontiguousarray(tex[:, disparity:disparity + width])


def step_pair(height: int, width: int, d_far: int, d_near: int, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Far plane in the top half, near plane in the bottom half (a horizontal depth step,
    so no occlusions): returns left, right, true disparity."""
    lf, rf = plane_pair(height, width, d_far, seed)
    ln, rn = plane_pair(height, width, d_near, seed + 1)
    half = height // 2
    left = np.concatenate([lf[:half], ln[half:]], axis=0)
    right = np.concatenate([rf[:half], rn[half:]], axis=0)
    gt = np.full((height, width), float(d_far), np.float32)
    gt[half:] = d_near
    return left, right, gt
