"""The rectified stereo camera model: disparity <-> depth and reprojection to 3D.

Conventions (those of stereo_image_proc and stereo_msgs/DisparityImage):
- a *match shift* is x_left - x_right in pixels, what a matcher or network measures;
- the published *disparity* is the shift adjusted for the principal points,
  d = shift - (cx_left - cx_right), so that depth Z = f * T / d with f = fx and T = baseline;
- 3D points are in the left optical frame: x right, y down, z forward, metres.
Invalid disparities (NaN, <= 0) give NaN depth and NaN points.
Functions take numpy arrays or torch tensors and return the same kind (on the same device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class CameraModelError(ValueError):
    """A camera_info / projection that cannot describe a rectified stereo pair."""


@dataclass(frozen=True)
class StereoGeometry:
    """Rectified stereo pair: left intrinsics, right principal point and the baseline (m)."""

    fx: float
    fy: float
    cx: float
    cy: float
    cx_right: float
    baseline: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy", "cx_right", "baseline"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise CameraModelError(f"{name} is {value}: camera parameters must be finite")
        if self.fx <= 0 or self.fy <= 0:
            raise CameraModelError(f"focal length must be positive (fx={self.fx}, fy={self.fy})")
        if self.baseline <= 0:
            raise CameraModelError(
                f"baseline is {self.baseline} m: the right camera_info P[3] gives no baseline; "
                "set the 'baseline' parameter (metres) for sources such as AirSim"
            )
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f"image size must be positive ({self.width}x{self.height})")

    @property
    def doffs(self) -> float:
        """cx_left - cx_right: subtract from a match shift to get the published disparity."""
        return self.cx - self.cx_right

    @property
    def focal_baseline(self) -> float:
        return self.fx * self.baseline

    @classmethod
    def from_projections(
        cls,
        p_left: Sequence[float],
        p_right: Sequence[float],
        width: int,
        height: int,
        baseline_override: float | None = None,
    ) -> StereoGeometry:
        """From the 3x4 rectified projection matrices (row-major, 12 numbers) of camera_info.P.

        The baseline is -P_right[3] / P_right[0] (stereo_image_proc); ``baseline_override``
        (metres, > 0) replaces it for drivers that leave P_right[3] at 0 (AirSim).
        """
        pl = [float(v) for v in p_left]
        pr = [float(v) for v in p_right]
        if len(pl) != 12 or len(pr) != 12:
            raise CameraModelError("projection matrices must have 12 elements (3x4)")
        if not (math.isfinite(pr[0]) and pr[0] > 0):
            raise CameraModelError(f"right camera_info P[0] (fx) is {pr[0]}: not a calibrated camera")
        if baseline_override is not None and baseline_override > 0:
            baseline = float(baseline_override)
        else:
            baseline = -pr[3] / pr[0] + 0.0  # + 0.0 turns -0.0 into 0.0 for the message
        return cls(
            fx=pl[0], fy=pl[5], cx=pl[2], cy=pl[6], cx_right=pr[2], baseline=baseline,
            width=int(width), height=int(height),
        )

    def scaled(self, factor: float) -> StereoGeometry:
        """The same rig for images resized by ``factor`` (intrinsics scale, baseline does not)."""
        return StereoGeometry(
            fx=self.fx * factor, fy=self.fy * factor, cx=self.cx * factor, cy=self.cy * factor,
            cx_right=self.cx_right * factor, baseline=self.baseline,
            width=round(self.width * factor), height=round(self.height * factor),
        )

    def disparity_for_depth(self, depth_m: float) -> float:
        return self.focal_baseline / depth_m


def _where(cond: Array, a: Array, b: float) -> Array:
    if isinstance(cond, torch.Tensor):
        return torch.where(cond, a, torch.as_tensor(b, dtype=a.dtype, device=a.device))
    return np.where(cond, a, np.asarray(b, dtype=a.dtype))


def shift_to_disparity(shift: Array, geometry: StereoGeometry) -> Array:
    """Match shift (x_l - x_r) -> published disparity (adjusted for cx_l - cx_r)."""
    return shift - geometry.doffs


def disparity_to_depth(disparity: Array, geometry: StereoGeometry) -> Array:
    """Z = f*T/d in metres; NaN where the disparity is NaN, inf or <= 0."""
    valid = disparity > 0
    valid = valid & (disparity < float("inf"))
    safe = _where(valid, disparity, 1.0)
    return _where(valid, geometry.focal_baseline / safe, float("nan"))


def depth_to_disparity(depth: Array, geometry: StereoGeometry) -> Array:
    """d = f*T/Z; NaN where the depth is NaN or <= 0."""
    valid = depth > 0
    safe = _where(valid, depth, 1.0)
    return _where(valid, geometry.focal_baseline / safe, float("nan"))


def reproject(disparity: Array, geometry: StereoGeometry) -> Array:
    """(H, W) published disparity -> (H, W, 3) points in the left optical frame, NaN invalid."""
    depth = disparity_to_depth(disparity, geometry)
    h, w = depth.shape[-2:]
    if isinstance(depth, torch.Tensor):
        v, u = torch.meshgrid(
            torch.arange(h, dtype=depth.dtype, device=depth.device),
            torch.arange(w, dtype=depth.dtype, device=depth.device),
            indexing="ij",
        )
        x = (u - geometry.cx) * depth / geometry.fx
        y = (v - geometry.cy) * depth / geometry.fy
        return torch.stack((x, y, depth), dim=-1)
    v, u = np.mgrid[0:h, 0:w].astype(depth.dtype)
    x = (u - geometry.cx) * depth / geometry.fx
    y = (v - geometry.cy) * depth / geometry.fy
    return np.stack((x, y, depth), axis=-1)
