import numpy as np
import pytest
import torch
from stereo_scenes import plane_pair, step_pair

from stereo_depth_ros.backends import BackendError, make_backend
from stereo_depth_ros.backends.sgbm import SgbmBackend, SgbmParams, valid_window


def test_defaults_are_stereo_image_procs():
    p = SgbmParams()
    assert (p.prefilter_size, p.prefilter_cap, p.correlation_window_size) == (9, 31, 15)
    assert (p.min_disparity, p.disparity_range, p.texture_threshold) == (0, 64, 10)
    assert (p.speckle_size, p.speckle_range, p.disp12_max_diff) == (100, 4, 0)
    assert (p.uniqueness_ratio, p.P1, p.P2, p.full_dp) == (15.0, 200.0, 400.0, False)


def test_valid_window_as_stereo_image_proc():
    # border 7; left = 64 + 0 + 7 - 1 = 70; right = 319 - 7 = 312; top 7, bottom 232
    assert valid_window(320, 240, 0, 64, 15) == (70, 7, 242, 225)
    # negative min disparity: the right margin is max(border, -min)
    assert valid_window(320, 240, -20, 64, 15) == (50, 7, 319 - 20 - 50, 225)


@pytest.mark.parametrize("algorithm", [1, 0])
def test_plane_disparity(algorithm):
    left, right = plane_pair(96, 160, 12, seed=3)
    backend = make_backend("sgbm", stereo_algorithm=algorithm, disparity_range=32,
                           correlation_window_size=7)
    res = backend.compute(left, right)
    assert isinstance(res.shift, torch.Tensor) and res.shift.dtype == torch.float32
    assert res.shift.shape == (96, 160)
    x, y, w, h = res.valid_window
    inner = res.shift.numpy()[y:y + h, x:x + w]
    finite = np.isfinite(inner)
    assert finite.mean() > 0.95
    assert np.abs(inner[finite] - 12).mean() < 0.25
    assert (res.min_disparity, res.max_disparity, res.delta_d) == (0.0, 31.0, 1 / 16)
    assert np.isnan(res.shift.numpy()[:, :20]).all()  # no match possible at the left border


def test_step_scene():
    left, right, gt = step_pair(96, 160, 6, 20, seed=5)
    res = SgbmBackend(disparity_range=32, correlation_window_size=7).compute(left, right)
    shift = res.shift.numpy()
    x, y, w, h = res.valid_window
    for rows in (slice(y, 40), slice(56, y + h)):  # away from the step edge
        s, g = shift[rows, x:x + w], gt[rows, x:x + w]
        ok = np.isfinite(s)
        assert ok.mean() > 0.9
        assert np.median(np.abs(s[ok] - g[ok])) < 0.3


def test_bad_parameters_and_inputs_are_clear():
    with pytest.raises(BackendError, match="disparity_range"):
        SgbmBackend(disparity_range=40)
    with pytest.raises(BackendError, match="correlation_window_size"):
        SgbmBackend(correlation_window_size=8)
    with pytest.raises(BackendError, match="unknown SGBM parameter"):
        SgbmBackend(window=5)
    b = SgbmBackend()
    with pytest.raises(BackendError, match="differ in size"):
        b.compute(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 21, 3), np.uint8))
