"""The nearest object in front of the camera: its mask, its one-pixel edges in 3D, its distance.

Core module (no ROS). Three parts:
- labels from the synthetic generator: the nearest object is the instance (id >= 2: not the
  background wall 0, not the ground 1) with the smallest robust depth (5th percentile) among
  instances that cover at least ``min_area`` pixels;
- post-processing of a mask (from the U-Net or the threshold baseline) with a disparity map:
  largest connected component -> one-pixel contour (cv2) -> edge pixels reprojected to 3D ->
  distance (robust depth of the mask) -> axis-aligned 3D box;
- ``NearestObjectDetector``: the U-Net (or the classical baseline: threshold near the maximum
  disparity + largest connected component) with a score threshold, a minimum area and a
  maximum range.

Nothing in range gives ``NearestObject.empty``: empty mask, no edges, no points and
``distance = +inf`` (REP 117: +inf means "no detection within range").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from stereo_depth_ros.geometry import StereoGeometry, disparity_to_depth

BACKGROUND_ID = 0
GROUND_ID = 1
FIRST_OBJECT_ID = 2
DEFAULT_PERCENTILE = 5.0
NO_OBJECT_DISTANCE = math.inf
BACKENDS = ("unet", "threshold")
BASELINE_HINT_AREA = 0.004  # min area of the baseline hint channel, as a share of the input
# Disparities in the top share of the backend's search range are not trusted (see
# drop_range_end): block matchers pile their wrong matches (speckles on weak texture) there.
RANGE_END_MARGIN = 0.1


class NearestInputError(ValueError):
    """Inputs the nearest-object detector cannot use; the message says what is wrong."""


class SizeMismatchError(NearestInputError):
    """Image, disparity, mask or camera model of different sizes."""


class InvalidDisparityError(NearestInputError):
    """A disparity map that is not (H, W) floating point or has no valid pixel at all."""


@dataclass
class NearestObject:
    """The result for one frame, at the input resolution.

    mask / edges: (H, W) bool; edges is the one-pixel contour of the mask (a subset of it).
    edge_points: (N, 3) float32 edge pixels in the left optical frame (metres), finite only.
    distance: robust depth of the mask in metres, +inf when nothing is in range.
    box_center / box_size: axis-aligned 3D box around the object's points, None when empty.
    score: mean probability inside the mask (1.0 for the threshold backend, 0.0 when empty).
    """

    mask: np.ndarray
    edges: np.ndarray
    edge_points: np.ndarray
    distance: float
    box_center: np.ndarray | None = None
    box_size: np.ndarray | None = None
    score: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(math.isfinite(self.distance) and self.mask.any())

    @classmethod
    def empty(cls, height: int, width: int, **info: Any) -> NearestObject:
        return cls(
            mask=np.zeros((height, width), dtype=bool),
            edges=np.zeros((height, width), dtype=bool),
            edge_points=np.zeros((0, 3), dtype=np.float32),
            distance=NO_OBJECT_DISTANCE,
            info=dict(info),
        )


# ----------------------------------------------------------------------------- labels


def robust_depth(depth: np.ndarray, mask: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> float:
    """``percentile``-th percentile of the finite positive depths under ``mask``; +inf if none."""
    values = depth[mask]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return NO_OBJECT_DISTANCE
    return float(np.percentile(values, percentile))


def nearest_object_label(
    instances: np.ndarray,
    depth: np.ndarray,
    min_area: int = 50,
    percentile: float = DEFAULT_PERCENTILE,
    max_range: float = math.inf,
) -> tuple[np.ndarray, int]:
    """(mask, instance id) of the nearest object; (all-False mask, 0) when there is none.

    Candidates are instance ids >= 2 covering at least ``min_area`` pixels whose robust depth
    is within ``max_range``; the one with the smallest robust depth wins.
    """
    if instances.shape != depth.shape:
        raise SizeMismatchError(f"instances {instances.shape} and depth {depth.shape} differ in size")
    best_id, best_depth = 0, math.inf
    ids, counts = np.unique(instances, return_counts=True)
    for inst, count in zip(ids.tolist(), counts.tolist(), strict=True):
        if inst < FIRST_OBJECT_ID or count < min_area:
            continue
        d = robust_depth(depth, instances == inst, percentile)
        if d <= max_range and d < best_depth:
            best_id, best_depth = inst, d
    if best_id == 0:
        return np.zeros(instances.shape, dtype=bool), 0
    return instances == best_id, best_id


# ------------------------------------------------------------------------ post-processing


def check_disparity(disparity: np.ndarray) -> np.ndarray:
    """(H, W) float32 copy; raises NearestInputError when it is not usable at all."""
    d = np.asarray(disparity)
    if d.ndim != 2:
        raise InvalidDisparityError(f"disparity must be a (H, W) array, got shape {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        raise InvalidDisparityError(f"disparity must be floating point, got {d.dtype}")
    d = d.astype(np.float32, copy=False)
    if not np.any(np.isfinite(d) & (d > 0)):
        raise InvalidDisparityError(
            f"disparity {d.shape[1]}x{d.shape[0]} has no valid pixel (all NaN, inf or <= 0)"
        )
    return d


def valid_disparity(disparity: np.ndarray) -> np.ndarray:
    return np.isfinite(disparity) & (disparity > 0)


def drop_range_end(disparity: np.ndarray, disparity_limit: float | None,
                   margin: float = RANGE_END_MARGIN) -> np.ndarray:
    """``disparity`` with NaN where it lies in the top ``margin`` (share) of the search range
    (at or above ``(1 - margin) * disparity_limit``), the backend's largest reportable disparity
    (DisparityImage.max_disparity). A block matcher's gross errors (blobs of wrong matches on
    weak or repetitive texture, larger than its speckle filter) cluster at the end of its search
    range, and a true match there is no better: the object may be nearer than the range can
    express. Left as is when ``disparity_limit`` is None, not finite or <= 0."""
    if disparity_limit is None or not (math.isfinite(disparity_limit) and disparity_limit > 0):
        return disparity
    cut = (1.0 - margin) * float(disparity_limit)
    return np.where(np.isfinite(disparity) & (disparity >= cut), np.float32(np.nan), disparity).astype(
        np.float32, copy=False)


@dataclass
class ImpossibleDisparity:
    """Pixels whose disparity the publisher could not have measured (see possible_disparity)."""

    count: int
    worst: float  # the largest of them, px
    limit: float  # the bound they exceed, px
    limit_from: str  # "max_disparity" or "image width"


def possible_disparity(disparity: np.ndarray, min_disparity: float, max_disparity: float
                       ) -> tuple[np.ndarray, ImpossibleDisparity | None]:
    """``disparity`` restricted to what its publisher can report, and a description of the
    finite values above that (None when there are none).

    Above the DisparityImage's ``max_disparity`` (or, when that is not > 0 and finite, at or
    beyond the image width, which no match can reach) a value would mean a distance nearer than
    the matcher can see: it becomes NaN and is reported, never turned into a distance. Below
    ``min_disparity`` (when > 0) is stereo_image_proc's mark for "no match" (min_disparity - 1):
    NaN without a word, as NaN and inf already are."""
    d = np.asarray(disparity, dtype=np.float32)
    if math.isfinite(max_disparity) and max_disparity > 0:
        limit, limit_from = float(max_disparity), "max_disparity"
        above = d > limit
    else:
        limit, limit_from = float(d.shape[1]), "image width"
        above = d >= limit
    above &= np.isfinite(d)
    invalid = above.copy()
    if math.isfinite(min_disparity) and min_disparity > 0:
        invalid |= d < min_disparity
    if not invalid.any():
        return d, None
    out = np.where(invalid, np.float32(np.nan), d)
    count = int(above.sum())
    if count == 0:
        return out, None
    return out, ImpossibleDisparity(count, float(d[above].astype(np.float64).max()), limit, limit_from)


def largest_component(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """The largest 8-connected component of ``mask`` if it has at least ``min_area`` pixels."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return np.zeros_like(m)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(m)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas))
    if areas[best] < max(1, min_area):
        return np.zeros_like(m)
    return labels == best + 1


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """One-pixel contour of the mask (outer borders and holes), traced on the mask's own pixels."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    edges = np.zeros_like(m)
    if m.any():
        contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(edges, contours, -1, color=1, thickness=1)
    return edges.astype(bool) & m.astype(bool)


def edge_disparity(disparity: np.ndarray, mask: np.ndarray, edges: np.ndarray, radius: int = 3) -> np.ndarray:
    """Disparity for each edge pixel: the median of the valid disparities of *mask* pixels in a
    (2r+1)^2 window. Boundary pixels are where stereo is least reliable (occlusions, blur);
    the window keeps the point on the object's surface. NaN where the window has no value."""
    ys, xs = np.nonzero(edges)
    if ys.size == 0:
        return np.zeros(0, dtype=np.float32)
    h, w = disparity.shape
    on_object = np.where(mask & valid_disparity(disparity), disparity, np.nan).astype(np.float32)
    padded = np.pad(on_object, radius, mode="constant", constant_values=np.nan)
    offsets = np.arange(-radius, radius + 1)
    wy = (ys[:, None, None] + radius + offsets[None, :, None]).clip(0, h + 2 * radius - 1)
    wx = (xs[:, None, None] + radius + offsets[None, None, :]).clip(0, w + 2 * radius - 1)
    windows = padded[wy, wx].reshape(ys.size, -1)
    out = np.full(ys.size, np.nan, dtype=np.float32)
    has = np.isfinite(windows).any(axis=1)
    if has.any():
        out[has] = np.nanmedian(windows[has], axis=1)
    return out


def pixels_to_points(
    us: np.ndarray, vs: np.ndarray, disparity: np.ndarray, geometry: StereoGeometry
) -> np.ndarray:
    """(N,) pixel coordinates + their disparities -> (N, 3) points, optical frame, NaN invalid.
    Same model as geometry.reproject, for a sparse set of pixels."""
    z = disparity_to_depth(disparity.astype(np.float64), geometry)
    x = (us - geometry.cx) * z / geometry.fx
    y = (vs - geometry.cy) * z / geometry.fy
    return np.stack((x, y, z), axis=-1).astype(np.float32)


def describe_mask(
    mask: np.ndarray,
    disparity: np.ndarray,
    geometry: StereoGeometry,
    *,
    min_area: int = 50,
    max_range: float = math.inf,
    percentile: float = DEFAULT_PERCENTILE,
    score: float = 1.0,
    **info: Any,
) -> NearestObject:
    """Mask + disparity -> NearestObject (largest component, edges, 3D points, distance, box)."""
    d = np.asarray(disparity, dtype=np.float32)
    if mask.shape != d.shape:
        raise SizeMismatchError(f"mask {mask.shape} and disparity {d.shape} differ in size")
    if (geometry.height, geometry.width) != d.shape:
        raise SizeMismatchError(
            f"disparity is {d.shape[1]}x{d.shape[0]} but the camera model is "
            f"{geometry.width}x{geometry.height}"
        )
    h, w = d.shape
    component = largest_component(mask, min_area)
    if not component.any():
        return NearestObject.empty(h, w, **info)
    depth = disparity_to_depth(d, geometry)
    distance = robust_depth(depth, component, percentile)
    if not distance <= max_range:  # also catches +inf (no valid disparity on the object)
        return NearestObject.empty(h, w, rejected_distance=distance, **info)
    edges = mask_edges(component)
    ys, xs = np.nonzero(edges)
    # A predicted mask may bleed a pixel or two onto the background: the edge points' depth
    # and the box come from the mask's interior (eroded by 2 px) when it is big enough.
    interior = cv2.erode(component.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    if (interior & valid_disparity(d)).sum() < max(10, 0.2 * component.sum()):
        interior = component
    points = pixels_to_points(xs, ys, edge_disparity(d, interior, edges, radius=3), geometry)
    points = points[np.isfinite(points).all(axis=1)]
    my, mx = np.nonzero(interior & valid_disparity(d))
    body = pixels_to_points(mx, my, d[my, mx], geometry)
    body = np.concatenate([body[np.isfinite(body).all(axis=1)], points])  # edges: the full extent
    center = size = None
    if body.shape[0]:
        lo = np.percentile(body, 2.0, axis=0)
        hi = np.percentile(body, 98.0, axis=0)
        center = ((lo + hi) / 2).astype(np.float32)
        size = np.maximum(hi - lo, 1e-3).astype(np.float32)
    return NearestObject(
        mask=component, edges=edges, edge_points=points, distance=distance,
        box_center=center, box_size=size, score=float(score), info=dict(info),
    )


# ------------------------------------------------------------------------- the baseline


def frame_peak_disparity(disparity: np.ndarray) -> float:
    """The frame's largest disparity after a 5x5 median filter (isolated outliers do not set
    it); 0.0 when nothing is valid."""
    valid = valid_disparity(disparity)
    if not valid.any():
        return 0.0
    filtered = cv2.medianBlur(np.where(valid, disparity, 0.0).astype(np.float32), 5)
    peak = float(filtered[valid].max())
    return peak if peak > 0 else float(disparity[valid].max())


def threshold_mask(
    disparity: np.ndarray,
    *,
    band: float = 0.15,
    min_area: int = 50,
    min_disparity: float = 0.0,
) -> np.ndarray:
    """Classical baseline: pixels whose disparity is within ``band`` (relative) of the maximum
    disparity, then the largest connected component. The maximum is taken after a 5x5 median
    filter so that isolated outliers do not set it. ``min_disparity`` drops what is out of
    range (fB / max_range)."""
    d = check_disparity(disparity)
    valid = valid_disparity(d) & (d >= min_disparity)
    if not valid.any():
        return np.zeros(d.shape, dtype=bool)
    d_max = frame_peak_disparity(np.where(valid, d, np.nan))
    candidates = valid & (d >= (1.0 - band) * d_max)
    return largest_component(candidates, min_area)


# -------------------------------------------------------------------------- U-Net inputs


def resize_disparity(disparity: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (normalized) disparity map to (W, H), NaN-aware (area average of valid pixels).
    Values are not rescaled: normalized disparity does not change with resolution."""
    w, h = size
    if disparity.shape == (h, w):
        return disparity.astype(np.float32, copy=False)
    valid = valid_disparity(disparity).astype(np.float32)
    filled = np.where(valid > 0, disparity, 0.0).astype(np.float32)
    interp = cv2.INTER_AREA if w <= disparity.shape[1] else cv2.INTER_LINEAR
    num = cv2.resize(filled, (w, h), interpolation=interp)
    den = cv2.resize(valid, (w, h), interpolation=interp)
    out = np.full((h, w), np.nan, dtype=np.float32)
    ok = den >= 0.5
    out[ok] = num[ok] / den[ok]
    return out


def unet_input(
    left: np.ndarray,
    disparity: np.ndarray,
    max_disparity: float,
    config: Any,
    size: tuple[int, int] | None = None,
    confidence: np.ndarray | None = None,
) -> np.ndarray:
    """(C, H, W) float32 network input at ``size`` = (W, H) (default: the input size).

    Channels: image in [0, 1] (gray or RGB per ``config.image_mode``), disparity / max_disparity
    clipped to [0, 1.5] with 0 where invalid, [validity], [disparity / the frame's peak
    disparity (``frame_peak_disparity``)], [confidence], [the threshold baseline's mask].
    """
    if not (math.isfinite(max_disparity) and max_disparity > 0):
        raise NearestInputError(f"max_disparity must be finite and > 0 (got {max_disparity})")
    h0, w0 = disparity.shape
    w, h = size if size is not None else (w0, h0)
    img = np.asarray(left)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if config.image_mode == "gray":
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
        channels = [img[None]]
    else:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        channels = [np.moveaxis(img[..., :3], -1, 0)]
    image = np.concatenate(channels, axis=0).astype(np.float32)
    if np.asarray(left).dtype == np.uint8:
        image = image / 255.0
    if (h, w) != (h0, w0):
        image = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in image])
    norm = resize_disparity(disparity / np.float32(max_disparity), (w, h))
    valid = valid_disparity(norm)
    out = [image, np.where(valid, np.clip(norm, 0.0, 1.5), 0.0)[None]]
    if config.use_valid:
        out.append(valid[None].astype(np.float32))
    if config.use_relative:
        peak = frame_peak_disparity(norm)
        rel = norm / np.float32(peak) if peak > 0 else np.zeros_like(norm)
        out.append(np.where(valid, np.clip(rel, 0.0, 1.5), 0.0)[None])
    if config.use_confidence:
        if confidence is None:
            conf = valid.astype(np.float32)
        else:
            conf = np.nan_to_num(np.asarray(confidence, dtype=np.float32), nan=0.0)
            if conf.shape != (h, w):
                conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_AREA)
        out.append(np.clip(conf, 0.0, 1.0)[None])
    if getattr(config, "use_baseline", False):
        hint = np.zeros((h, w), dtype=np.float32)
        if valid.any():
            min_area = max(1, round(BASELINE_HINT_AREA * w * h))
            hint = threshold_mask(norm, band=config.baseline_band, min_area=min_area).astype(np.float32)
        out.append(hint[None])
    return np.concatenate(out, axis=0).astype(np.float32)


# ---------------------------------------------------------------------------- detector


def pick_device(device: str = "auto") -> torch.device:
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a device: use auto, cpu or cuda") from None


def w_h(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def check_inputs(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """Validate the pair; returns the disparity as float32. Raises NearestInputError."""
    d = check_disparity(disparity)
    img = np.asarray(left)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise NearestInputError(f"left image must be (H, W) or (H, W, 3), got shape {img.shape}")
    if img.shape[:2] != d.shape:
        raise SizeMismatchError(
            f"left image is {img.shape[1]}x{img.shape[0]} but disparity is {d.shape[1]}x{d.shape[0]}"
        )
    return d


class NearestObjectDetector:
    """Finds the nearest object in (left image, disparity) with the U-Net or the baseline.

    backend: "unet" (needs ``model``, a checkpoint path, or ``network`` + ``config``) or
    "threshold". score_threshold: probability above which a pixel is in the mask (U-Net).
    min_area: pixels (at the input resolution) the object must cover. max_range: metres.
    band: the baseline's relative disparity band below the maximum.
    """

    def __init__(
        self,
        backend: str = "unet",
        model: str | Path | None = None,
        device: str = "auto",
        score_threshold: float = 0.5,
        min_area: int = 50,
        max_range: float = 20.0,
        band: float = 0.15,
        percentile: float = DEFAULT_PERCENTILE,
        network: torch.nn.Module | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown nearest-object backend {backend!r}: choose one of {', '.join(BACKENDS)}"
            )
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1) (got {score_threshold})")
        if not max_range > 0:
            raise ValueError(f"max_range must be > 0 metres (got {max_range})")
        self.backend = backend
        self.score_threshold = float(score_threshold)
        self.min_area = int(min_area)
        self.max_range = float(max_range)
        self.band = float(band)
        self.percentile = float(percentile)
        self.device = pick_device(device)
        self.network: torch.nn.Module | None = None
        self.input_size = input_size
        self.checkpoint_info: dict[str, Any] = {}
        if backend == "unet":
            if network is None:
                path = Path(model) if model else default_model_path()
                network, ckpt = load_unet_checkpoint(path)
                size = ckpt["meta"].get("input_size")
                self.input_size = self.input_size or (tuple(int(v) for v in size) if size else None)
                self.checkpoint_info = {"path": str(path), **ckpt["meta"]}
            self.network = network.to(self.device).eval()

    @property
    def config(self) -> Any:
        return self.network.config if self.network is not None else None

    def probability(self, left: np.ndarray, disparity: np.ndarray, max_disparity: float,
                    confidence: np.ndarray | None = None) -> np.ndarray:
        """(H, W) float32 U-Net probability at the input resolution."""
        if self.network is None:
            raise RuntimeError("probability() needs the unet backend")
        h, w = disparity.shape
        x = unet_input(left, disparity, max_disparity, self.config, self.input_size, confidence)
        with torch.inference_mode():
            logits = self.network(torch.from_numpy(x)[None].to(self.device))
            prob = torch.sigmoid(logits)[0, 0].float().cpu().numpy()
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        return prob

    def detect(
        self,
        left: np.ndarray,
        disparity: np.ndarray,
        geometry: StereoGeometry,
        max_disparity: float | None = None,
        confidence: np.ndarray | None = None,
        disparity_limit: float | None = None,
    ) -> NearestObject:
        """Nearest object in this frame (NearestObject.empty when nothing is in range).

        disparity: published disparity (adjusted for cx_l - cx_r), NaN where invalid.
        max_disparity: normalization for the U-Net input (DisparityImage.max_disparity, at the
        disparity's resolution); default: the largest valid disparity of the frame.
        disparity_limit: the backend's largest reportable disparity (DisparityImage.max_disparity);
        disparities in the top ``RANGE_END_MARGIN`` of it are treated as invalid
        (``drop_range_end``). None: every finite positive disparity is used.
        """
        d = check_inputs(left, disparity)
        if disparity_limit is not None:
            d = drop_range_end(d, disparity_limit)
            if not valid_disparity(d).any():
                raise InvalidDisparityError(
                    f"disparity {w_h(d)} has no valid pixel below the end of the search range "
                    f"({(1.0 - RANGE_END_MARGIN) * disparity_limit:.1f} px)")
        h, w = d.shape
        if (geometry.height, geometry.width) != (h, w):
            raise SizeMismatchError(
                f"disparity is {w}x{h} but camera_info says {geometry.width}x{geometry.height}"
            )
        min_disp = geometry.focal_baseline / self.max_range
        if self.backend == "threshold":
            mask = threshold_mask(d, band=self.band, min_area=self.min_area, min_disparity=min_disp)
            score = 1.0
        else:
            if max_disparity is None or not (math.isfinite(max_disparity) and max_disparity > 0):
                max_disparity = float(np.nanmax(np.where(valid_disparity(d), d, np.nan)))
            prob = self.probability(left, d, float(max_disparity), confidence)
            mask = prob > self.score_threshold
            mask = largest_component(mask, self.min_area)
            score = float(prob[mask].mean()) if mask.any() else 0.0
        return describe_mask(
            mask, d, geometry, min_area=self.min_area, max_range=self.max_range,
            percentile=self.percentile, score=score, backend=self.backend,
        )


def save_unet_checkpoint(path: str | Path, network: torch.nn.Module, meta: dict[str, Any] | None = None,
                         **extra: Any) -> Path:
    """Self-describing checkpoint in the package's format (estimator.make_checkpoint: plain data,
    arch 'unet', its config, ``meta`` with input_size, training data, command, metrics);
    ``extra`` adds e.g. optimizer state for resuming."""
    from stereo_depth_ros.estimator import make_checkpoint, save_checkpoint

    ckpt = make_checkpoint(network, "unet", network.config.to_dict(), meta, **extra)
    return save_checkpoint(ckpt, path)


def load_unet_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(UNet in eval mode, checkpoint dict); loads with weights_only=True (never runs code).
    Raises estimator.CheckpointError naming the file and the problem."""
    from stereo_depth_ros.estimator import CheckpointError, load_checkpoint, model_from_checkpoint

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"nearest-object model {path} does not exist: train one with `stereo-depth train-nearest` "
            "or use the 'threshold' backend"
        )
    ckpt = load_checkpoint(path)
    if ckpt["arch"] != "unet":
        raise CheckpointError(f"{path} holds a {ckpt['arch']!r} model, not the nearest-object U-Net")
    return model_from_checkpoint(ckpt).eval(), ckpt


def default_model_path() -> Path:
    from stereo_depth_ros.paths import WEIGHTS_DIR

    return WEIGHTS_DIR / "nearest_unet.pt"
