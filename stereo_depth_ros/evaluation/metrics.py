"""Stereo and segmentation metrics as the field defines them, over valid ground truth only.

- EPE: mean |d_pred - d_gt| in pixels.
- D1-all (KITTI 2015): share of pixels with error > 3 px AND > 5 % of the ground truth.
- bad-N: share of pixels with error > N px.
Pixels without ground truth (NaN, inf, <= 0, or outside ``mask``) are not counted. A pixel
where the prediction has no value (NaN) *is* counted, as an error of +inf, so a method that
leaves holes is not rewarded for them; ``density`` says what share it covered.

A sparse method and a dense one are compared three ways (:func:`three_views`): raw (as above),
dense (the holes filled by background interpolation, as the KITTI devkit and the Middlebury
SDK do, then everything over all valid ground truth: the field's headline) and on the pixels a
reference method covers.
"""

from __future__ import annotations

import math

import numpy as np

from stereo_depth_ros.disparity_fill import fill_background

STEREO_KEYS = ("epe", "d1_all", "bad1", "bad2", "bad3", "density", "valid_pixels")


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def valid_ground_truth(gt: np.ndarray) -> np.ndarray:
    return np.isfinite(gt) & (gt > 0)


def stereo_metrics(pred, gt, mask=None) -> dict[str, float]:
    """Disparity metrics for one frame. Fractions in [0, 1]; EPE in pixels over covered pixels.

    ``epe`` averages over pixels where both prediction and GT exist; the bad-N and D1 rates
    count missing predictions as errors (``density`` reports the covered share).
    """
    pred = _to_numpy(pred)
    gt = _to_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    valid = valid_ground_truth(gt)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    n = int(valid.sum())
    if n == 0:
        return {k: math.nan for k in STEREO_KEYS[:-1]} | {"valid_pixels": 0}
    p, g = pred[valid], gt[valid]
    covered = np.isfinite(p)
    err = np.where(covered, np.abs(p - g), np.inf)
    return {
        "epe": float(err[covered].mean()) if covered.any() else math.nan,
        "d1_all": float(np.mean((err > 3.0) & (err > 0.05 * g))),
        "bad1": float(np.mean(err > 1.0)),
        "bad2": float(np.mean(err > 2.0)),
        "bad3": float(np.mean(err > 3.0)),
        "density": float(covered.mean()),
        "valid_pixels": n,
    }


VIEWS = {"": "raw", "dense_": "dense (holes filled)", "ref_": "on the reference's pixels"}


def three_views(pred, gt, reference=None, mask=None) -> dict[str, float]:
    """Raw metrics (plain keys), ``dense_*`` (holes filled as the devkits do) and, when a
    ``reference`` prediction is given, ``ref_*`` over the pixels where it has a value."""
    pred = _to_numpy(pred)
    row = stereo_metrics(pred, gt, mask)
    row |= {f"dense_{k}": v for k, v in stereo_metrics(fill_background(pred), gt, mask).items()}
    if reference is not None:
        covered = np.isfinite(_to_numpy(reference))
        if mask is not None:
            covered &= np.asarray(mask, dtype=bool)
        row |= {f"ref_{k}": v for k, v in stereo_metrics(pred, gt, covered).items()}
    return row


def depth_metrics(pred_depth, gt_depth, mask=None) -> dict[str, float]:
    """AbsRel, RMSE (m) and delta < 1.25 over pixels where both depths are valid."""
    pred = _to_numpy(pred_depth)
    gt = _to_numpy(gt_depth)
    valid = valid_ground_truth(gt) & np.isfinite(pred) & (pred > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        return {"abs_rel": math.nan, "rmse": math.nan, "delta1": math.nan, "valid_pixels": 0}
    p, g = pred[valid], gt[valid]
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "valid_pixels": int(valid.sum()),
    }


def segmentation_metrics(pred_mask, gt_mask) -> dict[str, float]:
    """IoU and Dice of two boolean masks; both empty counts as a perfect match (1.0)."""
    p = np.asarray(_to_numpy(pred_mask) > 0.5)
    g = np.asarray(_to_numpy(gt_mask) > 0.5)
    inter = float(np.logical_and(p, g).sum())
    union = float(np.logical_or(p, g).sum())
    total = float(p.sum() + g.sum())
    return {
        "iou": 1.0 if union == 0 else inter / union,
        "dice": 1.0 if total == 0 else 2.0 * inter / total,
    }


def aggregate(per_frame: list[dict[str, float]], by_pixels: bool = True) -> dict[str, float]:
    """Mean over frames: pixel-weighted (each frame weighs by its valid pixels), or with
    ``by_pixels=False`` every frame with ground truth weighing the same (mean over scenes)."""
    if not per_frame:
        return {}
    weights = np.array([f.get("valid_pixels", 1) for f in per_frame], dtype=np.float64)
    if not by_pixels:
        weights = (weights > 0).astype(np.float64)
    out: dict[str, float] = {}
    for key in per_frame[0]:
        if key == "valid_pixels":
            out[key] = int(weights.sum())
            continue
        values = np.array([f[key] for f in per_frame], dtype=np.float64)
        ok = np.isfinite(values) & (weights > 0)
        out[key] = float(np.average(values[ok], weights=weights[ok])) if ok.any() else math.nan
    out["frames"] = len(per_frame)
    return out
