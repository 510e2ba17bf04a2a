import math

import numpy as np
import pytest
import torch

from stereo_depth_ros.geometry import (
    CameraModelError,
    StereoGeometry,
    depth_to_disparity,
    disparity_to_depth,
    reproject,
    shift_to_disparity,
)

P_LEFT = [400.0, 0, 320.0, 0, 0, 410.0, 240.0, 0, 0, 0, 1, 0]
P_RIGHT = [400.0, 0, 310.0, -400.0 * 0.12, 0, 410.0, 240.0, 0, 0, 0, 1, 0]


def geometry() -> StereoGeometry:
    return StereoGeometry.from_projections(P_LEFT, P_RIGHT, 640, 480)


def test_baseline_from_right_projection_and_doffs():
    g = geometry()
    assert g.baseline == pytest.approx(0.12)
    assert g.doffs == pytest.approx(10.0)
    assert shift_to_disparity(np.array([34.0]), g)[0] == pytest.approx(24.0)


def test_zero_baseline_is_a_clear_error_and_override_fixes_it():
    p_right = list(P_RIGHT)
    p_right[3] = 0.0
    with pytest.raises(CameraModelError, match="baseline"):
        StereoGeometry.from_projections(P_LEFT, p_right, 640, 480)
    g = StereoGeometry.from_projections(P_LEFT, p_right, 640, 480, baseline_override=0.25)
    assert g.baseline == 0.25


@pytest.mark.parametrize("bad", [0.0, math.nan])
def test_bad_focal_length_is_refused(bad):
    p_right = list(P_RIGHT)
    p_right[0] = bad
    with pytest.raises(CameraModelError):
        StereoGeometry.from_projections(P_LEFT, p_right, 640, 480)


def test_depth_disparity_round_trip_and_invalids_numpy_and_torch():
    g = geometry()
    disp = np.array([[48.0, 0.0], [np.nan, -3.0]], dtype=np.float32)
    depth = disparity_to_depth(disp, g)
    assert depth[0, 0] == pytest.approx(400 * 0.12 / 48.0)
    assert np.isnan(depth[0, 1]) and np.isnan(depth[1, 0]) and np.isnan(depth[1, 1])
    back = depth_to_disparity(depth, g)
    assert back[0, 0] == pytest.approx(48.0)
    t = disparity_to_depth(torch.from_numpy(disp), g)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), depth, equal_nan=True)


def test_reproject_puts_points_on_the_optical_axes():
    g = geometry()
    disp = np.full((480, 640), 24.0, dtype=np.float32)
    pts = reproject(disp, g)
    z = 400 * 0.12 / 24.0
    assert pts.shape == (480, 640, 3)
    np.testing.assert_allclose(pts[240, 320], [0.0, 0.0, z], atol=1e-6)
    assert pts[240, 420, 0] == pytest.approx(100 * z / 400)  # right of centre -> +x
    assert pts[340, 320, 1] == pytest.approx(100 * z / 410)  # below centre -> +y
    pts_t = reproject(torch.from_numpy(disp), g)
    np.testing.assert_allclose(pts_t.numpy(), pts, rtol=1e-6)
