"""The learned stereo backend: a trained network through :class:`StereoEstimator`."""

from __future__ import annotations

import numpy as np
import torch

from stereo_depth_ros.backends.base import BackendError, DisparityResult, check_pair

# The networks regress continuous (soft-argmin) disparities; the step reported in
# DisparityImage.delta_d is the same 1/16 px that OpenCV and stereo_image_proc use.
DELTA_D = 1.0 / 16.0


class LearnedBackend:
    """A checkpoint ('default' = the shipped weights, or a path) run on ``device``.

    ``confidence_threshold`` > 0 turns pixels with lower model confidence into NaN.
    ``max_disparity`` (optional) further limits the reported range: larger shifts become NaN.
    ``checkpoint`` is accepted as an alias of ``model``; other options (e.g. SGBM's) are ignored.
    """

    name = "learned"

    def __init__(
        self,
        model: str = "default",
        device: str = "auto",
        precision: str = "auto",
        max_disparity: float | None = None,
        confidence_threshold: float = 0.0,
        estimator=None,
        checkpoint: str | None = None,
        **_: object,
    ) -> None:
        from stereo_depth_ros.estimator import CheckpointError, StereoEstimator

        if checkpoint:  # alias of ``model`` (a path)
            model = checkpoint
        if estimator is None:
            try:
                estimator = StereoEstimator.from_checkpoint(model, device=device, precision=precision)
            except CheckpointError as exc:
                raise BackendError(f"learned backend: {exc}") from None
            except ValueError as exc:
                raise BackendError(f"learned backend: {exc}") from None
        self.estimator = estimator
        self.device = estimator.device
        model_max = estimator.max_disparity
        if max_disparity is not None and max_disparity <= 0:
            raise BackendError(f"max_disparity must be positive, got {max_disparity}")
        self.max_disparity = float(min(model_max, max_disparity) if max_disparity else model_max)
        if not 0.0 <= confidence_threshold < 1.0:
            raise BackendError(f"confidence_threshold must be in [0, 1), got {confidence_threshold}")
        self.confidence_threshold = float(confidence_threshold)

    def compute(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> DisparityResult:
        check_pair(left_rgb, right_rgb)
        h, w = left_rgb.shape[:2]
        left = (
            torch.from_numpy(np.ascontiguousarray(left_rgb)).to(self.device).permute(2, 0, 1).float() / 255.0
        )
        right = (
            torch.from_numpy(np.ascontiguousarray(right_rgb)).to(self.device).permute(2, 0, 1).float() / 255.0
        )
        out = self.estimator(left, right)
        shift = out["disparity"]
        conf = out["confidence"]
        invalid = ~torch.isfinite(shift) | (shift > self.max_disparity) | (shift < 0)
        if conf is not None and self.confidence_threshold > 0:
            invalid |= conf < self.confidence_threshold
        shift = torch.where(invalid, torch.full_like(shift, float("nan")), shift)
        return DisparityResult(
            shift=shift,
            confidence=conf,
            min_disparity=0.0,
            max_disparity=self.max_disparity,
            delta_d=DELTA_D,
            valid_window=(0, 0, w, h),
        )
