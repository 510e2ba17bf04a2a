"""The learned stereo backend: a trained network through :class:`StereoEstimator`."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stereo_depth_ros.backends.base import BackendError, DisparityResult, check_pair

# The networks regress continuous (soft-argmin) disparities; the step reported in
# DisparityImage.delta_d is the same 1/16 px that OpenCV and stereo_image_proc use.
DELTA_D = 1.0 / 16.0


class LearnedBackend:
    """A checkpoint ('default' = the shipped weights, or a path) run on ``device``.

    ``max_disparity`` (optional) is the largest disparity to report: below the network's own
    range, larger shifts become NaN; above it, the pair runs at a reduced scale (network range /
    ``max_disparity``) and the result is upsampled, so the whole range is covered, never clipped.
    Networks guided by SGBM (``guided``) search exactly that range.
    ``confidence_threshold`` > 0 turns pixels with lower model confidence into NaN.
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
        if max_disparity is not None and max_disparity <= 0:
            raise BackendError(f"max_disparity must be positive, got {max_disparity}")
        model_max = float(estimator.max_disparity)
        self.max_disparity = float(max_disparity) if max_disparity else model_max
        # beyond the network's range: run at a reduced scale instead of clipping
        self.scale = min(1.0, model_max / self.max_disparity)
        if not 0.0 <= confidence_threshold < 1.0:
            raise BackendError(f"confidence_threshold must be in [0, 1), got {confidence_threshold}")
        self.confidence_threshold = float(confidence_threshold)

    def for_range(self, max_disparity: float) -> LearnedBackend:
        """The same network (shared, not reloaded) reporting shifts up to ``max_disparity``."""
        return LearnedBackend(estimator=self.estimator, max_disparity=max_disparity,
                              confidence_threshold=self.confidence_threshold)

    def compute(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> DisparityResult:
        check_pair(left_rgb, right_rgb)
        h, w = left_rgb.shape[:2]
        if self.scale < 1.0:
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            left_rgb = cv2.resize(left_rgb, size, interpolation=cv2.INTER_AREA)
            right_rgb = cv2.resize(right_rgb, size, interpolation=cv2.INTER_AREA)
        left = _to_tensor(left_rgb, self.device)
        right = _to_tensor(right_rgb, self.device)
        out = self.estimator(left, right, search_range=self.max_disparity * self.scale)
        shift = out["disparity"]
        conf = out["confidence"]
        if shift.shape != (h, w):  # reduced scale: back to the input size, in input pixels
            shift = _resize(shift, h, w) * (w / left_rgb.shape[1])
            conf = _resize(conf, h, w) if conf is not None else None
        invalid = ~torch.isfinite(shift) | (shift > self.max_disparity) | (shift < 0)
        if conf is not None and self.confidence_threshold > 0:
            invalid |= conf < self.confidence_threshold
        shift = torch.where(invalid, torch.full_like(shift, float("nan")), shift)
        return DisparityResult(
            shift=shift,
            confidence=conf,
            min_disparity=0.0,
            max_disparity=self.max_disparity,
            delta_d=DELTA_D / self.scale,
            valid_window=(0, 0, w, h),
        )


def _resize(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(image[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float() / 255.0
