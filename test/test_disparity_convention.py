"""How DisparityImage marks invalid pixels, checked against consumers written the way ROS's own
read the message.

- stereo_image_proc's point cloud node hands the disparity image to image_geometry's
  projectDisparityImageTo3d, i.e. OpenCV's reprojectImageTo3D with handleMissingValues: the
  image's smallest value is "missing" (Z = 10000), and a point is kept when Z is neither that nor
  infinite (its isValidPoint).
- The message definition, and consumers such as disparity viewers: "any disparity less than
  min_disparity is invalid".

``sentinel`` (the default) satisfies both exactly; ``nan`` (REP 118 style) does not, and the
tests below pin down how.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from stereo_scenes import step_pair
from test_depth_node import SGBM, H, W, _setup, _wait_outputs

from stereo_depth_ros import disparity_convention
from stereo_depth_ros.backends import BackendError
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.compat import point_cloud2
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph

MISSING_Z = 10000.0  # OpenCV's (and image_geometry's) Z for a missing disparity


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


def point_cloud_node_points(disparity_msg, left_info, right_info) -> np.ndarray:
    """(H, W, 3) points the way stereo_image_proc's point cloud node makes them (NaN = dropped)."""
    fx, cx, cy = left_info.p[0], left_info.p[2], left_info.p[6]
    baseline = -right_info.p[3] / right_info.p[0]
    # reprojection for a disparity already adjusted for cx_l - cx_r: [X Y Z W] = Q [u v d 1]
    q = np.array([[1, 0, 0, -cx], [0, 1, 0, -cy], [0, 0, 0, fx], [0, 0, 1 / baseline, 0]], np.float64)
    image = disparity_msg.image
    rows = np.frombuffer(bytes(image.data), np.float32).reshape(image.height, image.step // 4)
    dmat = np.ascontiguousarray(rows[:, :image.width])
    points = cv2.reprojectImageTo3D(dmat, q, handleMissingValues=True)
    z = points[:, :, 2]
    valid = (z != MISSING_Z) & ~np.isinf(z)  # isValidPoint
    return np.where(valid[:, :, None], points, np.nan)


def range_check_invalid(disparity_msg) -> np.ndarray:
    """Invalid pixels as the message definition states them: d < min_disparity."""
    image = disparity_msg.image
    d = np.frombuffer(bytes(image.data), np.float32).reshape(image.height, image.width)
    with np.errstate(invalid="ignore"):
        return d < disparity_msg.min_disparity


def test_encode_and_decode_both_conventions():
    d = np.array([[np.nan, 3.5, np.inf], [0.0, -2.0, 7.0]], np.float32)
    sentinel = disparity_convention.encode(d, -2.0, "sentinel")
    np.testing.assert_array_equal(sentinel, [[-3.0, 3.5, -3.0], [0.0, -2.0, 7.0]])
    nan = disparity_convention.encode(d, -2.0, "nan")
    assert np.isnan(nan[0, 0]) and np.isnan(nan[0, 2]) and nan[1, 1] == -2.0
    for published in (sentinel, nan):
        back = disparity_convention.decode(published, -2.0)
        np.testing.assert_array_equal(np.isnan(back), ~np.isfinite(d))
    with pytest.raises(ValueError, match="sentinel, nan"):
        disparity_convention.encode(d, 0.0, "zero")


def _run(graph, namespace, params, stamp):
    node, harness = _setup(graph, namespace, SGBM + params)
    left, right, _ = step_pair(H, W, 8, 20, seed=5)
    msgs = harness.messages(stamp, left, right)
    harness.send(msgs)
    disp, _, cloud = _wait_outputs(graph, harness, stamp)
    ours = point_cloud2.read_points(cloud, field_names=["x", "y", "z"], reshape_organized_cloud=True)
    xyz = np.stack([ours["x"], ours["y"], ours["z"]], axis=-1).astype(np.float64)
    return node, disp, xyz, msgs


def test_sentinel_default_is_read_exactly_by_both_kinds_of_consumer(graph):
    node, disp, xyz, msgs = _run(graph, "/conv_sentinel", [], 2_000_000_001)
    assert node.get_parameter("invalid_disparity").value == "sentinel"
    ours_valid = np.isfinite(xyz[:, :, 2])
    assert 0.3 < ours_valid.mean() < 1.0, "the scene must have valid and invalid pixels"
    image = conv.image_32f(disp.image)
    assert not np.isnan(image).any()
    np.testing.assert_array_equal(image[~ours_valid], disp.min_disparity - 1.0)
    # stereo_image_proc's point cloud node keeps exactly our valid points, at our coordinates
    theirs = point_cloud_node_points(disp, msgs["left/camera_info"], msgs["right/camera_info"])
    np.testing.assert_array_equal(np.isfinite(theirs[:, :, 2]), ours_valid)
    np.testing.assert_allclose(theirs[ours_valid], xyz[ours_valid], rtol=1e-4, atol=1e-5)
    # d < min_disparity marks exactly our invalid pixels
    np.testing.assert_array_equal(range_check_invalid(disp), ~ours_valid)
    np.testing.assert_array_equal(np.isnan(conv.disparity_from_msg(disp)), ~ours_valid)


def test_nan_convention_and_what_stereo_image_proc_consumers_make_of_it(graph):
    _, disp, xyz, msgs = _run(graph, "/conv_nan", [Parameter("invalid_disparity", value="nan")],
                              2_000_000_002)
    ours_valid = np.isfinite(xyz[:, :, 2])
    image = conv.image_32f(disp.image)
    np.testing.assert_array_equal(np.isnan(image), ~ours_valid)
    np.testing.assert_array_equal(np.isnan(conv.disparity_from_msg(disp)), ~ours_valid)
    # a d < min_disparity consumer takes every NaN pixel for a valid one
    assert not range_check_invalid(disp).any()
    # the point cloud node: a NaN disparity reprojects to a NaN point (whatever OpenCV then takes for
    # the "missing" minimum), so it publishes no point we do not, at our coordinates
    theirs = point_cloud_node_points(disp, msgs["left/camera_info"], msgs["right/camera_info"])
    theirs_valid = np.isfinite(theirs[:, :, 2])
    assert not (theirs_valid & ~ours_valid).any()
    assert theirs_valid.sum() >= 0.99 * ours_valid.sum()
    np.testing.assert_allclose(theirs[theirs_valid], xyz[theirs_valid], rtol=1e-4, atol=1e-5)


def test_an_unknown_convention_refuses_to_start(graph):
    with pytest.raises(BackendError, match="invalid_disparity must be one of sentinel, nan"):
        DepthNode(namespace="/conv_bad", context=graph.context,
                  parameter_overrides=[Parameter("invalid_disparity", value="zero")])
