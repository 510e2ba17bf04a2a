"""The ``guided`` network and its SGBM guidance: the left border matched, hints through the
backend at any range, reduced scale above the network's own range."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.backends.learned import LearnedBackend
from stereo_depth_ros.data.synthetic import StereoRig, render_random
from stereo_depth_ros.estimator import StereoEstimator
from stereo_depth_ros.guidance import HintParams, search_range, sgbm_hint, sgbm_hints

SMALL = {"max_disparity": 64, "channels": [8, 8, 8], "bottleneck_blocks": 1}


@pytest.fixture(scope="module")
def scene():
    return render_random(1_000_123, StereoRig.for_size(192, 128), max_disparity=40)


def test_padding_lets_sgbm_match_the_left_border(scene):
    padded = sgbm_hint(scene.left, scene.right, 48, HintParams())
    plain = sgbm_hint(scene.left, scene.right, 48, HintParams(pad_left=False))
    border = np.zeros(scene.disparity.shape, bool)
    border[:, :48] = True
    assert np.isnan(plain[border]).all()  # OpenCV leaves the search range's columns empty
    matchable = border & (scene.disparity <= np.arange(scene.disparity.shape[1])[None, :] - 2)
    found = matchable & np.isfinite(padded)
    assert found.sum() > 0.5 * matchable.sum()
    err = np.abs(padded - scene.disparity)[found & ~scene.occlusion]
    assert np.median(err) < 1.0
    assert np.nanmax(padded) <= 48 and search_range(40) == 48 and search_range(3) == 16


def test_right_view_hint_agrees_with_the_left_one(scene):
    """The mirrored match gives the right view's disparity (at half resolution, so within a
    pixel or so): where both exist, a left pixel's disparity d is the right view's at x - d."""
    left_view, right_view = sgbm_hints(scene.left, scene.right, 48, HintParams())
    h, w = left_view.shape
    xs = np.arange(w)[None, :] - np.nan_to_num(left_view)
    back = np.take_along_axis(right_view, np.clip(np.round(xs), 0, w - 1).astype(int), 1)
    both = np.isfinite(left_view) & np.isfinite(back) & (xs >= 0) & ~scene.occlusion
    assert both.mean() > 0.5
    assert np.median(np.abs(left_view - back)[both]) < 1.0
    assert np.mean(np.abs(left_view - back)[both] < 3) > 0.9


def test_the_keep_decision_removes_values_before_the_fill(scene):
    est = StereoEstimator.untrained("guided", **SMALL)
    torch.nn.init.constant_(est.model.keep.bias, -20.0)  # trust nothing: no value is left to fill from
    left = torch.from_numpy(scene.left).permute(2, 0, 1).float() / 255
    right = torch.from_numpy(scene.right).permute(2, 0, 1).float() / 255
    assert (est(left, right, search_range=48)["disparity"] == 0).all()


def test_hint_params_are_checked():
    with pytest.raises(ValueError, match="odd"):
        HintParams(block_size=4)
    with pytest.raises(ValueError, match="unknown hint option"):
        HintParams.from_dict({"blok": 3})


def test_untrained_guided_network_returns_the_filled_hint(scene):
    """The correction head starts at zero: an untrained network is the devkit-filled SGBM."""
    from stereo_depth_ros.disparity_fill import fill_background

    est = StereoEstimator.untrained("guided", **SMALL)
    left = torch.from_numpy(scene.left).permute(2, 0, 1).float() / 255
    right = torch.from_numpy(scene.right).permute(2, 0, 1).float() / 255
    out = est(left, right, search_range=48)
    hint = sgbm_hint(scene.left, scene.right, 48, HintParams())
    np.testing.assert_allclose(out["disparity"].numpy(), fill_background(hint, complete=True), atol=1e-4)
    assert out["confidence"].shape == scene.disparity.shape


def test_backend_covers_ranges_above_the_network_by_running_smaller(scene):
    est = StereoEstimator.untrained("guided", **SMALL)
    native = LearnedBackend(estimator=est)
    wide = LearnedBackend(estimator=est, max_disparity=128)
    assert native.max_disparity == 64 and wide.max_disparity == 128 and wide.scale == 0.5
    result = wide.compute(scene.left, scene.right)
    assert tuple(result.shift.shape) == scene.disparity.shape and result.max_disparity == 128
    ok = np.isfinite(result.shift.numpy()) & ~scene.occlusion
    assert np.median(np.abs(result.shift.numpy() - scene.disparity)[ok]) < 2.0  # in input pixels
    narrow = native.for_range(32)
    assert narrow.estimator is est and narrow.max_disparity == 32
    assert np.nanmax(narrow.compute(scene.left, scene.right).shift.numpy()) <= 32


def test_training_samples_carry_hints_over_a_drawn_range():
    from stereo_depth_ros.training.hints import HintTraining, WithHints

    gt = np.full((32, 48), 20.0, np.float32)
    sample = {"left": torch.rand(3, 32, 48), "right": torch.rand(3, 32, 48),
              "disparity": torch.from_numpy(gt)}

    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, k):
            return dict(sample)

    cfg = HintTraining(range_factor=(1.0, 2.0), min_range=32, max_range=192)
    assert {cfg.draw_range(gt, np.random.default_rng(s)) for s in range(20)} <= {32, 48}
    out = WithHints(One(), HintParams(), cfg)[0]
    assert out["hint"].shape == (2, 32, 48) and out["hint"].dtype == torch.float32
