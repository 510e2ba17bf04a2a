"""Filling the holes of a sparse disparity map by background interpolation.

This is how the KITTI stereo devkit (``interpolateBackground``) and the Middlebury SDK make a
sparse method comparable with a dense one: along every row, a run of missing pixels between
two valid ones takes the smaller of the two disparities (the background side, which is right
for occlusions); runs touching the left or right border take the nearest valid value of the
row; then, column by column, rows above the first and below the last valid pixel take that
pixel's value. Rows with no valid pixel between valid rows stay empty, as in the devkit.
``complete=True`` fills those too (vertically, the same background rule) and sets an image with
no valid pixel at all to 0, for callers that need a dense array.
"""

from __future__ import annotations

import numpy as np


def _runs_along_last_axis(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Background interpolation along the last axis; lines without a valid pixel stay NaN."""
    n = d.shape[-1]
    idx = np.broadcast_to(np.arange(n), d.shape)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, idx, n), axis=-1), axis=-1), axis=-1)
    has_prev, has_next = prev >= 0, nxt < n
    left = np.take_along_axis(d, np.clip(prev, 0, n - 1), axis=-1)
    right = np.take_along_axis(d, np.clip(nxt, 0, n - 1), axis=-1)
    out = np.where(has_prev & has_next, np.minimum(left, right), np.where(has_prev, left, right))
    out = np.where(has_prev | has_next, out, np.nan)
    return np.where(valid, d, out)


def _extrapolate_columns(d: np.ndarray) -> np.ndarray:
    """Rows above the first / below the last valid pixel of each column take its value."""
    valid = np.isfinite(d)
    h = d.shape[0]
    rows = np.arange(h)[:, None]
    first = np.where(valid.any(0), valid.argmax(0), h)
    last = np.where(valid.any(0), h - 1 - valid[::-1].argmax(0), -1)
    cols = np.arange(d.shape[1])
    top = d[np.clip(first, 0, h - 1), cols][None, :]
    bottom = d[np.clip(last, 0, h - 1), cols][None, :]
    out = np.where((rows < first) & (first < h), top, d)
    return np.where((rows > last) & (last >= 0), bottom, out)


def fill_background(disparity: np.ndarray, complete: bool = False) -> np.ndarray:
    """A float32 copy of ``disparity`` (H, W) with its NaN/inf holes filled as the devkits do.

    See the module docstring; ``complete`` also fills what the devkit leaves empty.
    """
    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"expected an (H, W) disparity map, got shape {d.shape}")
    valid = np.isfinite(d)
    d = np.where(valid, d, np.float32(np.nan))
    out = _extrapolate_columns(_runs_along_last_axis(d, valid))
    if complete:
        still = ~np.isfinite(out)
        if still.any():
            out = _runs_along_last_axis(out.T, ~still.T).T
        out = np.nan_to_num(out, nan=0.0)
    return out.astype(np.float32, copy=False)
