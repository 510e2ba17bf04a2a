"""The synthetic camera over real rclpy: what a driver publishes, with exact ground truth."""

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from stereo_depth_ros.data.synthetic import SceneSequence, StereoRig
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.ros.synthetic_camera import SyntheticCamera

pytestmark = pytest.mark.ros

TOPICS = (("left/image_rect", Image), ("right/image_rect", Image), ("left/camera_info", CameraInfo),
          ("right/camera_info", CameraInfo), ("ground_truth/disparity", Image),
          ("ground_truth/depth", Image))


class Listener(Node):
    def __init__(self, context):
        super().__init__("listener", context=context, namespace="cam")
        self.got = {name: [] for name, _ in TOPICS}
        for name, t in TOPICS:  # sensor-data QoS, as the depth node subscribes
            self.create_subscription(t, name, lambda m, n=name: self.got[n].append(m),
                                     qos_profile_sensor_data)


def test_publishes_a_stereo_driver_stream_with_ground_truth():
    with NodeGraph() as graph:
        listener = graph.add(Listener(graph.context))
        camera = graph.add(SyntheticCamera(context=graph.context, namespace="cam", parameter_overrides=[
            Parameter("width", value=96), Parameter("height", value=64), Parameter("rate", value=20.0),
            Parameter("seed", value=3), Parameter("max_disparity", value=24.0),
            Parameter("loop_frames", value=2), Parameter("wait_for_prerender", value=True)]))
        assert graph.wait_until(lambda: all(len(v) >= 3 for v in listener.got.values()), timeout=30)
        got = {k: list(v) for k, v in listener.got.items()}
        assert camera.published >= 3

    li, ri = got["left/camera_info"][0], got["right/camera_info"][0]
    assert li.header.frame_id == "stereo_left_optical_frame"
    assert ri.header.frame_id == "stereo_right_optical_frame"
    rig = StereoRig.for_size(96, 64)
    assert ri.p[3] == pytest.approx(-rig.fx * 0.12) and li.p[3] == 0.0     # baseline in right P[3]
    assert (li.width, li.height) == (96, 64) and li.p[0] == pytest.approx(rig.fx)
    geometry = conv.geometry_from_camera_info(li, ri, 96, 64)
    assert geometry.baseline == pytest.approx(0.12)

    # every stream carries the same stamps; frame 0 is what the generator renders for index 0
    stamps = {k: [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in v] for k, v in got.items()}
    common = set.intersection(*(set(s) for s in stamps.values()))
    assert len(common) >= 2
    first = min(common)
    pick = {k: v[stamps[k].index(first)] for k, v in got.items()}
    left = conv.image_to_rgb(pick["left/image_rect"])
    assert pick["left/image_rect"].encoding == "rgb8" and left.shape == (64, 96, 3)
    expected = SceneSequence(3, rig, max_disparity=24.0).frame(0)
    np.testing.assert_array_equal(left, expected.left)
    np.testing.assert_array_equal(conv.image_to_rgb(pick["right/image_rect"]), expected.right)
    gt = conv.image_32f(pick["ground_truth/disparity"])
    np.testing.assert_allclose(gt, expected.disparity)
    depth = conv.image_32f(pick["ground_truth/depth"])
    np.testing.assert_allclose(depth, rig.fx * 0.12 / gt, rtol=1e-4)
    assert 0 < gt.min() and gt.max() <= 24.0
    # the two loop frames differ (the scene moves)
    other = {k: v[stamps[k].index(sorted(common)[1])] for k, v in got.items()}
    assert not np.array_equal(conv.image_32f(other["ground_truth/disparity"]), gt)
