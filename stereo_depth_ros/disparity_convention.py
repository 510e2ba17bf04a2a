"""How a DisparityImage marks pixels without a disparity.

stereo_msgs/DisparityImage says "any disparity less than min_disparity is invalid", and
stereo_image_proc writes ``min_disparity - 1`` there (never NaN): its consumers test
``d < min_disparity`` (NaN passes such a test as valid) or, like its point cloud node, let
OpenCV's reprojectImageTo3D treat the image's smallest value as missing. ``sentinel`` (the
default) writes that value; ``nan`` writes NaN, as REP 118 does for depth images. Readers here
accept both (:func:`decode`). No rclpy.
"""

from __future__ import annotations

import numpy as np

CONVENTIONS = ("sentinel", "nan")
DEFAULT = "sentinel"


def check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"invalid_disparity must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return convention


def encode(disparity: np.ndarray, min_disparity: float, convention: str = DEFAULT) -> np.ndarray:
    """float32 disparity with NaN/inf where unknown -> the values to publish under ``convention``."""
    values = np.asarray(disparity, dtype=np.float32)
    fill = np.float32(np.nan if check(convention) == "nan" else min_disparity - 1.0)
    return np.where(np.isfinite(values), values, fill).astype(np.float32, copy=False)


def decode(values: np.ndarray, min_disparity: float) -> np.ndarray:
    """Published values (either convention) -> float32 disparity, NaN where invalid."""
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values >= np.float32(min_disparity))
    return np.where(valid, values, np.float32(np.nan)).astype(np.float32, copy=False)
