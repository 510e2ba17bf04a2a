"""Camera-like photometric differences between the two views of a synthetic pair.

Real stereo cameras differ in exposure, gain, black level, response curve, noise and
focus; a matcher trained on perfectly identical views learns to rely on that. Applied to
float images in [0, 1]; the geometry (and so the ground truth) is untouched.
"""

from __future__ import annotations

import cv2
import numpy as np


def _one_view(img: np.ndarray, rng: np.random.Generator, gamma: float) -> np.ndarray:
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    bias = rng.uniform(-0.03, 0.03)
    out = np.clip(img * gain + bias, 0, 1) ** (gamma * rng.uniform(0.95, 1.05))
    if rng.random() < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.9))
    sigma = rng.uniform(0.0, 0.025) if rng.random() < 0.8 else 0.0
    if sigma > 0:
        out = out + np.float32(sigma) * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def apply_photometric(
    left: np.ndarray, right: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Independent gain/bias/gamma/blur/noise per view around a shared exposure and gamma."""
    exposure = rng.uniform(0.8, 1.15)
    gamma = rng.uniform(0.8, 1.25)
    left = _one_view(np.clip(left * exposure, 0, 1), rng, gamma)
    right = _one_view(np.clip(right * exposure, 0, 1), rng, gamma)
    return left, right


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
