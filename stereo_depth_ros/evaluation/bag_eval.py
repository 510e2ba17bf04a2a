"""Offline evaluation of models on a rosbag2: stereo frames paired by stamp, the model run on
each, scored against a ground-truth topic when the bag has one (disparity or depth image),
and always by two measures that need no ground truth:

- photometric reconstruction error: the right image warped into the left view by the
  predicted disparity, mean absolute grey-level difference (0-255) over pixels it covers;
  ``photo_identity`` is the same error for zero disparity, the "no stereo at all" reference.
- left-right consistency (optional, one extra model run on the mirrored pair): share of left
  pixels whose disparity agrees with the right view's within 1 px, and the mean difference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_depth_ros import disparity_convention
from stereo_depth_ros.backends import BackendError, StereoBackend
from stereo_depth_ros.evaluation import bag_io, ground_truth, report
from stereo_depth_ros.evaluation.metrics import depth_metrics
from stereo_depth_ros.evaluation.models import compute_shift, new_runs
from stereo_depth_ros.evaluation.run_dataset import score
from stereo_depth_ros.geometry import CameraModelError, disparity_to_depth, shift_to_disparity

LR_TOLERANCE_PX = 1.0


@dataclass
class BagEvalOptions:
    topics: bag_io.StereoTopics = field(default_factory=bag_io.StereoTopics)
    gt_topic: str | None = "ground_truth/disparity"
    gt_kind: str = "auto"  # auto | disparity | depth | perspective (evaluation/ground_truth.py)
    tolerance_ns: int = 0
    baseline: float | None = None  # overrides camera_info (AirSim puts 0 in P_right[3])
    left_right: bool | None = None  # None: only when there is no ground truth
    limit: int | None = None
    figures: int = 4


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def photometric_error(left_rgb: np.ndarray, right_rgb: np.ndarray, shift: np.ndarray) -> dict[str, float]:
    """Right image warped to the left view by ``shift`` (x_right = x_left - shift)."""
    h, w = shift.shape
    left, right = _gray(left_rgb), _gray(right_rgb)
    xs = np.arange(w, dtype=np.float32)[None, :] - np.nan_to_num(shift, nan=-1e6).astype(np.float32)
    ys = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    # replicate: samples at the last row/column must not mix in a border value; xs limits validity
    warped = cv2.remap(right, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ok = np.isfinite(shift) & np.isfinite(warped) & (xs >= 0) & (xs <= w - 1)
    identity = float(np.mean(np.abs(left - right)))
    if not ok.any():
        return {"photo_l1": float("nan"), "photo_identity": identity, "photo_coverage": 0.0}
    return {"photo_l1": float(np.mean(np.abs(left[ok] - warped[ok]))), "photo_identity": identity,
            "photo_coverage": float(ok.mean())}


def left_right_consistency(backend: StereoBackend, left_rgb: np.ndarray, right_rgb: np.ndarray,
                           shift_left: np.ndarray) -> dict[str, float]:
    """The right view's disparity from the mirrored pair, compared at each left pixel's match."""
    mirrored = compute_shift(backend, np.ascontiguousarray(right_rgb[:, ::-1]),
                             np.ascontiguousarray(left_rgb[:, ::-1]))
    shift_right = mirrored[:, ::-1]
    h, w = shift_left.shape
    covered = np.isfinite(shift_left)
    xr = np.rint(np.arange(w)[None, :] - np.where(covered, shift_left, 0)).astype(np.int64)
    inside = covered & (xr >= 0) & (xr < w)
    rows = np.repeat(np.arange(h)[:, None], w, axis=1)
    other = np.full_like(shift_left, np.nan)
    other[inside] = shift_right[rows[inside], xr[inside]]
    both = inside & np.isfinite(other)
    if not both.any():
        return {"lr_consistent": 0.0, "lr_mean_diff": float("nan")}
    diff = np.abs(shift_left[both] - other[both])
    # share over all covered left pixels: a match with no right-view answer is not consistent
    return {"lr_consistent": float((diff <= LR_TOLERANCE_PX).sum() / covered.sum()),
            "lr_mean_diff": float(diff.mean())}


def _gt_disparity(msg: Any, topic: str, requested: str, geometry
                  ) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """(GT disparity, GT planar depth or None, kind, why) from a DisparityImage or an Image topic
    (see evaluation/ground_truth.py for how the kind is decided)."""
    image = msg.image if hasattr(msg, "image") and hasattr(msg, "delta_d") else msg  # DisparityImage
    meaning = ground_truth.interpret(topic, image.encoding, image is not msg, requested)
    values = bag_io.float_image(image)
    if image is not msg:  # a DisparityImage marks invalid pixels with NaN or min_disparity - 1
        values = disparity_convention.decode(values, msg.min_disparity)
    gt, depth = ground_truth.to_disparity(values, meaning.kind, geometry)
    return gt, depth, meaning.kind, meaning.describe(topic, image.encoding)


def evaluate_bag(path: str | Path, models: Sequence[tuple[str, StereoBackend]], options: BagEvalOptions,
                 out_dir: str | Path | None = None, progress: bool = True
                 ) -> tuple[list[report.ModelRun], list[Path], dict[str, Any]]:
    """Every model on every stereo frame of the bag: (runs, figures, facts about the bag)."""
    runs = new_runs(models)
    figures: list[Path] = []
    hist: dict[str, list[np.ndarray]] = {r.model: [] for r in runs}
    stats = bag_io.PairingStats()
    with bag_io.open_bag(path) as bag:
        extras = {"gt": options.gt_topic} if options.gt_topic else {}
        gt_topic = bag.resolve(options.gt_topic, required=False) if options.gt_topic else None
        if options.gt_topic and gt_topic is None and options.gt_topic == BagEvalOptions.gt_topic:
            gt_topic = bag.resolve("ground_truth/depth", required=False)  # the camera's other GT
            extras = {"gt": gt_topic} if gt_topic else {}
        lr = options.left_right if options.left_right is not None else gt_topic is None
        info: dict[str, Any] = {"bag": str(path), "gt_topic": gt_topic or "none", "left_right_check": lr,
                                "topics": {t: i.msgtype for t, i in bag.topics.items()}}
        if options.gt_topic and gt_topic is None:
            info["gt_not_found"] = options.gt_topic
        frames = bag_io.stereo_frames(bag, options.topics, extras, options.tolerance_ns, options.limit, stats)
        total = options.limit or bag.topics[bag.resolve(options.topics.left)].count
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, total=total, desc="eval-bag", unit="frame")
        for index, frame in enumerate(frames):
            name = f"t={frame.stamp_ns / 1e9:.3f}"
            try:
                left = bag_io.image_to_rgb(frame.left)
                right = bag_io.image_to_rgb(frame.right)
                if left.shape != right.shape:
                    raise ValueError(f"left {left.shape[:2]} and right {right.shape[:2]} differ in size")
                geometry = bag_io.geometry_from_infos(frame.left_info, frame.right_info, options.baseline)
                gt = gt_depth = None
                if "gt" in frame.extras:
                    gt, gt_depth, info["gt_kind"], info["gt_interpretation"] = _gt_disparity(
                        frame.extras["gt"], gt_topic, options.gt_kind, geometry)
                    if gt.shape != left.shape[:2]:
                        raise ValueError(f"ground truth {gt.shape} and image {left.shape[:2]} differ in size")
            except ground_truth.GroundTruthError:
                raise  # the topic as a whole cannot be scored: no frame can
            except (ValueError, CameraModelError) as exc:
                for run in runs:
                    run.add_error(name, f"frame {name} of {path}: {exc}")
                continue
            preds = {}
            for run, (_, backend) in zip(runs, models, strict=True):
                try:
                    t0 = time.perf_counter()
                    shift = compute_shift(backend, left, right)
                    elapsed = (time.perf_counter() - t0) * 1000.0
                    disparity = shift_to_disparity(shift, geometry)
                    row: dict[str, Any] = {"item": name, "stamp_ns": frame.stamp_ns}
                    if gt is not None:
                        row |= score(disparity, gt, None)
                        if gt_depth is not None:
                            pred_depth = disparity_to_depth(disparity, geometry)
                            row |= {f"depth_{k}": v for k, v in depth_metrics(pred_depth, gt_depth).items()}
                        has = np.isfinite(gt) & (gt > 0)
                        hist[run.model].append(np.abs(np.where(np.isfinite(disparity), disparity, np.inf)
                                                      - gt)[has][::7])
                    row |= photometric_error(left, right, shift)
                    if lr:
                        row |= left_right_consistency(backend, left, right, shift)
                    row["time_ms"] = elapsed
                except BackendError as exc:
                    run.add_error(name, f"frame {name}: {exc}")
                    continue
                run.frames.append(row)
                preds[run.model] = disparity
            if out_dir is not None and index < options.figures and preds:
                panel = report.frame_panel(left, gt, preds)
                figures.append(report.save_figure(out_dir, f"frame_{index:03d}", panel))
    for stamp_ns, why in stats.undecodable:  # frames lost to an undecodable message: reported
        for run in runs:
            run.add_error(f"t={stamp_ns / 1e9:.3f}", f"frame t={stamp_ns / 1e9:.3f} of {path}: {why}")
    info |= {"left_images": stats.left_images, "right_images": stats.right_images, "paired": stats.paired,
             "undecodable_frames": len(stats.undecodable),
             "unpaired_left": len(stats.unpaired_left),
             "frames_without_gt": stats.missing_extra.get("gt", 0)}
    for run in runs:
        run.finish()
    if out_dir is not None and any(hist.values()):
        figures.insert(0, report.save_figure(out_dir, "error_histogram", report.error_histogram(
            {k: np.concatenate(v) for k, v in hist.items() if v})))
    return runs, figures, info


def columns_for(runs: Sequence[report.ModelRun]) -> list[report.Column]:
    """GT metrics when there was GT, depth metrics for depth GT, then the GT-free measures."""
    keys = set().union(*(r.summary for r in runs)) if runs else set()
    cols: list[report.Column] = []
    if "epe" in keys:
        cols += [c for c in report.STEREO_COLUMNS if c.key not in ("time_ms", "frames")]
    if "depth_abs_rel" in keys:
        cols += [report.Column("depth_" + c.key, c.header, c.scale, c.fmt) for c in report.DEPTH_COLUMNS]
    cols += [report.Column("photo_l1", "photo L1"), report.Column("photo_identity", "photo L1 @d=0")]
    if "lr_consistent" in keys:
        cols += [report.Column("lr_consistent", "LR ok %", 100, "{:.1f}"),
                 report.Column("lr_mean_diff", "LR diff px")]
    cols += [report.Column("time_ms", "ms/frame", 1, "{:.1f}"), report.Column("frames", "frames", 1, "{:d}")]
    return cols
