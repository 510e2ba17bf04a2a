"""Background interpolation of holes (KITTI devkit ``interpolateBackground`` / Middlebury SDK)."""

import numpy as np
import pytest

from stereo_depth_ros.disparity_fill import fill_background

nan = np.nan


def _devkit(d):
    """The devkit's loops, transcribed directly: the reference for the vectorised version."""
    d = d.copy()
    h, w = d.shape
    for v in range(h):
        count = 0
        for u in range(w):
            if np.isfinite(d[v, u]):
                if count >= 1:
                    u1, u2 = u - count, u - 1
                    if u1 > 0 and u2 < w - 1:
                        d[v, u1:u2 + 1] = min(d[v, u1 - 1], d[v, u2 + 1])
                count = 0
            else:
                count += 1
        valid = np.flatnonzero(np.isfinite(d[v]))
        if valid.size:
            d[v, :valid[0]] = d[v, valid[0]]
            d[v, valid[-1] + 1:] = d[v, valid[-1]]
    for u in range(w):
        valid = np.flatnonzero(np.isfinite(d[:, u]))
        if valid.size:
            d[:valid[0], u] = d[valid[0], u]
            d[valid[-1] + 1:, u] = d[valid[-1], u]
    return d


def test_known_answers():
    d = np.array([[nan, 5, nan, nan, 9, nan],
                  [nan, nan, nan, nan, nan, nan],
                  [2, nan, 7, nan, nan, 4]], np.float32)
    out = fill_background(d)
    np.testing.assert_array_equal(out[0], [5, 5, 5, 5, 9, 9])  # interior run: the smaller end
    np.testing.assert_array_equal(out[2], [2, 2, 7, 4, 4, 4])
    assert np.isnan(out[1]).all()  # an empty row between valid rows stays empty, as in the devkit
    np.testing.assert_array_equal(fill_background(d, complete=True)[1], [2, 2, 5, 4, 4, 4])


def test_border_rows_and_empty_images():
    d = np.full((3, 4), nan, np.float32)
    d[1] = [1, 2, 3, 4]
    np.testing.assert_array_equal(fill_background(d), np.tile([1, 2, 3, 4], (3, 1)))
    assert np.isnan(fill_background(np.full((2, 2), nan))).all()
    assert (fill_background(np.full((2, 2), nan), complete=True) == 0).all()
    with pytest.raises(ValueError, match="H, W"):
        fill_background(np.zeros(3))


def test_matches_the_devkit_loops_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = rng.integers(1, 12, 2)
        d = rng.uniform(0, 50, (h, w)).astype(np.float32)
        d[rng.random((h, w)) < rng.random()] = nan
        np.testing.assert_array_equal(fill_background(d), _devkit(d))
        assert np.isfinite(fill_background(d, complete=True)).all()
