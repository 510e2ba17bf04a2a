"""OpenCV block matching with stereo_image_proc's parameter names, defaults and output window.

``stereo_algorithm`` 1 (the default here: this is the ``sgbm`` backend) runs StereoSGBM,
0 runs StereoBM as stereo_image_proc's default does. Parameters that only one matcher uses
(``prefilter_size``, ``texture_threshold`` for BM; ``P1``, ``P2``, ``disp12_max_diff``,
``full_dp`` for SGBM) are accepted for both and ignored by the other, as in stereo_image_proc.
OpenCV reports 1/16 px fixed point; invalid pixels (below ``min_disparity``) become NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from stereo_depth_ros.backends.base import BackendError, DisparityResult, check_pair

DPP = 16  # OpenCV's fixed-point disparities per pixel


@dataclass(frozen=True)
class SgbmParams:
    """stereo_image_proc's disparity node parameters (names, defaults and ranges)."""

    stereo_algorithm: int = 1
    prefilter_size: int = 9
    prefilter_cap: int = 31
    correlation_window_size: int = 15
    min_disparity: int = 0
    disparity_range: int = 64
    texture_threshold: int = 10
    speckle_size: int = 100
    speckle_range: int = 4
    disp12_max_diff: int = 0
    uniqueness_ratio: float = 15.0
    P1: float = 200.0  # noqa: N815 (stereo_image_proc's name)
    P2: float = 400.0  # noqa: N815
    full_dp: bool = False

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise BackendError(f"invalid SGBM parameter: {what}")

        need(self.stereo_algorithm in (0, 1), f"stereo_algorithm must be 0 (BM) or 1 (SGBM), "
             f"got {self.stereo_algorithm}")
        need(5 <= self.prefilter_size <= 255 and self.prefilter_size % 2 == 1,
             f"prefilter_size must be odd in [5, 255], got {self.prefilter_size}")
        need(1 <= self.prefilter_cap <= 63, f"prefilter_cap must be in [1, 63], got {self.prefilter_cap}")
        need(5 <= self.correlation_window_size <= 255 and self.correlation_window_size % 2 == 1,
             f"correlation_window_size must be odd in [5, 255], got {self.correlation_window_size}")
        need(-2048 <= self.min_disparity <= 2048,
             f"min_disparity must be in [-2048, 2048], got {self.min_disparity}")
        need(32 <= self.disparity_range <= 4096 and self.disparity_range % 16 == 0,
             f"disparity_range must be a multiple of 16 in [32, 4096], got {self.disparity_range}")
        need(0 <= self.texture_threshold <= 10000, f"texture_threshold must be in [0, 10000], "
             f"got {self.texture_threshold}")
        need(0 <= self.speckle_size <= 1000, f"speckle_size must be in [0, 1000], got {self.speckle_size}")
        need(0 <= self.speckle_range <= 31, f"speckle_range must be in [0, 31], got {self.speckle_range}")
        need(0 <= self.disp12_max_diff <= 128,
             f"disp12_max_diff must be in [0, 128], got {self.disp12_max_diff}")
        need(0.0 <= self.uniqueness_ratio <= 100.0,
             f"uniqueness_ratio must be in [0, 100], got {self.uniqueness_ratio}")
        need(0.0 <= self.P1 <= 4000.0 and 0.0 <= self.P2 <= 4000.0,
             f"P1 and P2 must be in [0, 4000], got {self.P1}, {self.P2}")
        need(self.P2 > self.P1 or self.stereo_algorithm == 0,
             f"P2 ({self.P2}) must be greater than P1 ({self.P1}) for SGBM")


def range_for(max_disparity: float) -> int:
    """The ``disparity_range`` that searches ``max_disparity`` px: a multiple of 16, at least 32."""
    return max(32, int(np.ceil(max_disparity / DPP)) * DPP)


def valid_window(width: int, height: int, min_disparity: int, disparity_range: int,
                 window_size: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the pixels that can hold a disparity, as stereo_image_proc computes it:
    the left border loses the search range plus half a window, the others half a window."""
    border = window_size // 2
    left = disparity_range + min_disparity + border - 1
    right_margin = border + min_disparity if min_disparity >= 0 else max(border, -min_disparity)
    right = width - 1 - right_margin
    top, bottom = border, height - 1 - border
    return (left, top, max(right - left, 0), max(bottom - top, 0))


class SgbmBackend:
    """StereoSGBM (or StereoBM) on the CPU; results as a CPU float32 tensor."""

    name = "sgbm"

    def __init__(self, device: str | None = None, **params: float | int | bool) -> None:
        unknown = set(params) - set(SgbmParams.__dataclass_fields__)
        if unknown:
            raise BackendError(f"unknown SGBM parameter(s): {', '.join(sorted(unknown))}")
        self.params = SgbmParams(**params)  # type: ignore[arg-type]
        self.params.validate()
        self.device = torch.device("cpu")  # OpenCV runs on the CPU whatever was asked
        self._matcher = self._build(self.params)

    def for_range(self, max_disparity: float) -> SgbmBackend:
        """The same settings searching ``max_disparity`` pixels (rounded up to a multiple of 16, at
        least 32), as a user sets stereo_image_proc's ``disparity_range`` for a scene."""
        return SgbmBackend(**{**asdict(self.params), "disparity_range": range_for(max_disparity)})

    @staticmethod
    def _build(p: SgbmParams) -> cv2.StereoMatcher:
        if p.stereo_algorithm == 0:
            bm = cv2.StereoBM_create(p.disparity_range, p.correlation_window_size)
            bm.setMinDisparity(p.min_disparity)
            bm.setPreFilterSize(p.prefilter_size)
            bm.setPreFilterCap(p.prefilter_cap)
            bm.setTextureThreshold(p.texture_threshold)
            bm.setUniquenessRatio(int(round(p.uniqueness_ratio)))
            bm.setSpeckleWindowSize(p.speckle_size)
            bm.setSpeckleRange(p.speckle_range)
            return bm
        return cv2.StereoSGBM_create(
            minDisparity=p.min_disparity,
            numDisparities=p.disparity_range,
            blockSize=p.correlation_window_size,
            P1=int(round(p.P1)),
            P2=int(round(p.P2)),
            disp12MaxDiff=p.disp12_max_diff,
            preFilterCap=p.prefilter_cap,
            uniquenessRatio=int(round(p.uniqueness_ratio)),
            speckleWindowSize=p.speckle_size,
            speckleRange=p.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_HH if p.full_dp else cv2.STEREO_SGBM_MODE_SGBM,
        )

    def compute(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> DisparityResult:
        check_pair(left_rgb, right_rgb)
        h, w = left_rgb.shape[:2]
        p = self.params
        vw = valid_window(w, h, p.min_disparity, p.disparity_range, p.correlation_window_size)
        if vw[2] <= 0 or vw[3] <= 0:  # OpenCV would raise cv2.error (SGBM) or return nothing
            raise BackendError(f"a {w}x{h} image is too small for disparity_range {p.disparity_range}, "
                               f"min_disparity {p.min_disparity} and correlation_window_size "
                               f"{p.correlation_window_size}: no pixel can be matched")
        left = cv2.cvtColor(np.ascontiguousarray(left_rgb), cv2.COLOR_RGB2GRAY)
        right = cv2.cvtColor(np.ascontiguousarray(right_rgb), cv2.COLOR_RGB2GRAY)
        try:
            fixed = self._matcher.compute(left, right)  # int16, 16 x shift; invalid = (min - 1) * 16
        except cv2.error as exc:
            raise BackendError(f"OpenCV {'SGBM' if p.stereo_algorithm else 'BM'} failed on a {w}x{h} "
                               f"pair: {str(exc).strip().splitlines()[-1]}") from None
        shift = fixed.astype(np.float32) / DPP
        shift[fixed < p.min_disparity * DPP] = np.nan
        return DisparityResult(
            shift=torch.from_numpy(shift),
            confidence=None,
            min_disparity=float(p.min_disparity),
            max_disparity=float(p.min_disparity + p.disparity_range - 1),
            delta_d=1.0 / DPP,
            valid_window=valid_window(w, h, p.min_disparity, p.disparity_range,
                                      p.correlation_window_size),
        )
