"""The nearest-object node never reports a distance its inputs cannot give, sent to a running node
process over DDS (threshold backend: exact, no weights). Scene: a textured wall at 4 m and a
square nearer; DisparityImage as the depth node publishes it, with the fields under test edited.

- a patch of disparity 1e30 in a DisparityImage with max_disparity 0: before, an object at
  2e-29 m; now those pixels are at or beyond the image width (no match reaches that far), so
  they are ignored, named in a warning and counted (beyond_range), and the wall is reported;
- max_disparity 10 with the square at 16 px: its pixels are beyond what the matcher can report;
  the 4 m wall is the nearest thing measured (as before), but now a warning says an object
  nearer than f*T/10 may be missed; Range.min_range says the same limit;
- DisparityImage.T = 0: refused (bad_camera_info) without telling the user to set a 'baseline'
  parameter (this node has none);
- DisparityImage.f unlike the left camera_info fx: warned (fx_mismatch);
- each time the next good set is served: the square at its true distance.
"""

import math
import time

import numpy as np
import pytest
import torch
from node_process import NodeProcess, assert_no_traceback
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, Range
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros.backends.base import DisparityResult
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros._cv_bridge import CvBridge
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.training.nearest import make_rig

pytestmark = pytest.mark.ros

W, H = 160, 120
GEOM = make_rig(W, H).geometry()   # fx 100, B 0.12 m: f*T = 12
FT = GEOM.fx * GEOM.baseline
WALL_Z = 4.0
BRIDGE = CvBridge()


def scene(square_disparity):
    """(left image, disparity): the wall at 4 m (3 px), a 30x30 square at ``square_disparity``."""
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    d = np.full((H, W), FT / WALL_Z, np.float32)
    d[40:70, 60:90] = square_disparity
    return left, d


class Feeder(Node):
    def __init__(self, ns, context):
        super().__init__("nearest_feeder", namespace=ns, context=context)
        qos = QoSProfile(depth=10)
        self.pubs = {"disparity": self.create_publisher(DisparityImage, "disparity", qos),
                     "left/image_rect": self.create_publisher(Image, "left/image_rect", qos),
                     "left/camera_info": self.create_publisher(CameraInfo, "left/camera_info", qos)}
        self.ranges = {}
        self.create_subscription(Range, "nearest_object/distance", self._range, qos)

    def _range(self, msg):
        self.ranges[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg

    def send(self, stamp_ns, left, disparity, max_disparity=32.0, edit=None):
        def header():
            h = Header(frame_id="cam_left_optical")
            h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 10**9)
            return h

        result = DisparityResult(shift=torch.from_numpy(disparity), confidence=None, min_disparity=0.0,
                                 max_disparity=max_disparity, delta_d=1 / 16, valid_window=(0, 0, W, H))
        msgs = {"left/camera_info": conv.camera_info_from_geometry(GEOM, header()),
                "left/image_rect": BRIDGE.cv2_to_imgmsg(left, "rgb8", header()),
                "disparity": conv.disparity_msg(disparity, result, GEOM, header())}
        if edit is not None:
            edit(msgs)
        for name, msg in msgs.items():
            self.pubs[name].publish(msg)


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


@pytest.fixture(scope="module")
def rig(graph):
    feeder = graph.add(Feeder("nearest_limits", graph.context))
    node = NodeProcess("stereo_depth_ros.ros.nearest_object_node", "/nearest_limits",
                       {"backend": "threshold", "min_area": 50, "diagnostics_period": 0.2})
    with node:
        feeder.node = node
        node.watch_diagnostics(feeder)
        node.wait_for_line(r"backend threshold")
        pubs = feeder.pubs.values()
        assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                                and feeder.count_publishers("nearest_object/distance") > 0, 60), node.output
        left, d = scene(24.0)   # 0.5 m
        for _ in range(5):   # warm up: the first sets may go out before both sides have matched
            feeder.send(500_000_000, left, d)
            if graph.wait_until(lambda: 500_000_000 in feeder.ranges, 10):
                break
        assert 500_000_000 in feeder.ranges, node.output
        yield feeder
        assert node.stop() == 0
    assert_no_traceback(node.output)


def _distance(graph, feeder, stamp):
    assert graph.wait_until(lambda: stamp in feeder.ranges, 30), f"no {stamp}:\n{feeder.node.output}"
    return feeder.ranges[stamp]


def _served(graph, feeder, stamp):
    """A good set: the square at 24 px (0.5 m) is found at its distance."""
    feeder.send(stamp, *scene(24.0))
    r = _distance(graph, feeder, stamp)
    assert r.range == pytest.approx(FT / 24.0, rel=0.01)


def _warned(graph, feeder, cause, before, mark, *words):
    feeder.node.wait_counter(graph, cause, before + 1)
    line = feeder.node.wait_for_line(rf"\[{cause}: \d+ so far\]", start=mark)
    for word in words:
        assert word in line, line
    return line


def test_a_disparity_beyond_the_image_width_is_never_a_distance(graph, rig):
    left, d = scene(1e30)
    mark, before = rig.node.mark(), max(rig.node.counter("beyond_range"), 0)
    rig.send(1_000_000_000, left, d, max_disparity=0.0)
    r = _distance(graph, rig, 1_000_000_000)
    # before: an object at 2e-29 m. Nothing nearer than f*T / width is possible
    assert r.range >= FT / W and r.min_range == pytest.approx(FT / W)
    assert r.range == pytest.approx(WALL_Z, rel=0.01)   # the wall, the nearest thing measured
    line = _warned(graph, rig, "beyond_range", before, mark, "[WARN]", "900 disparity pixels at or above the "
                   "image width 160 px (up to 1e+30 px)", "states no max_disparity: ignored")
    assert "frame skipped" not in line
    _served(graph, rig, 1_100_000_000)
    assert rig.node.counter("beyond_range") == before + 1


def test_disparities_above_the_stated_range_are_named_not_silently_dropped(graph, rig):
    left, d = scene(16.0)   # the square at 16 px (0.75 m), the message says the matcher stops at 10
    time.sleep(2.1)   # the log is throttled to a line per cause every 2 s: the first test's went out
    mark, before = rig.node.mark(), max(rig.node.counter("beyond_range"), 0)
    rig.send(2_000_000_000, left, d, max_disparity=10.0)
    r = _distance(graph, rig, 2_000_000_000)
    assert r.range == pytest.approx(WALL_Z, rel=0.01)   # what the matcher can measure
    assert r.min_range == pytest.approx(FT / (0.9 * 10.0)) and r.range >= r.min_range
    _warned(graph, rig, "beyond_range", before, mark, "900 disparity pixels above the DisparityImage's "
            "max_disparity 10 px (up to 16 px)", f"an object nearer than {FT / 10:.2f} m may be missed")
    _served(graph, rig, 2_100_000_000)


def test_a_disparity_image_without_baseline_is_refused_without_naming_a_parameter_it_lacks(graph, rig):
    def no_baseline(msgs):
        msgs["disparity"].t = 0.0

    mark, before = rig.node.mark(), max(rig.node.counter("bad_camera_info"), 0)
    rig.send(3_000_000_000, *scene(24.0), edit=no_baseline)
    line = _warned(graph, rig, "bad_camera_info", before, mark, "DisparityImage.T (the baseline) is 0.0 m",
                   "frame skipped")
    assert "set the 'baseline' parameter" not in line
    graph.wait_until(lambda: False, 0.5)
    assert 3_000_000_000 not in rig.ranges
    _served(graph, rig, 3_100_000_000)


def test_a_disparity_focal_length_unlike_the_left_cameras_is_named(graph, rig):
    def other_f(msgs):
        msgs["disparity"].f = 2 * GEOM.fx

    mark, before = rig.node.mark(), max(rig.node.counter("fx_mismatch"), 0)
    rig.send(4_000_000_000, *scene(24.0), edit=other_f)
    r = _distance(graph, rig, 4_000_000_000)   # processed, with the left fx
    assert r.range == pytest.approx(FT / 24.0, rel=0.01) and math.isfinite(r.range)
    _warned(graph, rig, "fx_mismatch", before, mark, "DisparityImage.f 200 differs from the left camera_info "
            "fx 100", "2 x them")
    _served(graph, rig, 4_100_000_000)
    assert rig.node.counter("fx_mismatch") == before + 1


def test_possible_disparity_bounds():
    from stereo_depth_ros.nearest import possible_disparity

    d = np.array([[1.0, 5.0, 9.5, 12.0, np.nan, np.inf, -1.0, 4.0]], np.float32)
    out, bad = possible_disparity(d, min_disparity=4.5, max_disparity=10.0)
    # above the range: ignored and described; below min_disparity (stereo_image_proc's "no match",
    # min_disparity - 1), NaN, inf and <= 0: invalid without a word
    assert bad.count == 1 and bad.worst == 12.0 and bad.limit == 10.0 and bad.limit_from == "max_disparity"
    assert np.array_equal(np.isfinite(out[0]), [False, True, True, False, False, False, False, False])
    assert np.isposinf(out[0, 5])   # left as it was: invalid for every later step
    out, bad = possible_disparity(d, min_disparity=0.0, max_disparity=0.0)   # no range: the width, 8 px
    assert (bad.count, bad.worst, bad.limit, bad.limit_from) == (2, 12.0, 8.0, "image width")
    assert np.isfinite(out).sum() == 4
    out, bad = possible_disparity(d * 1e30, min_disparity=0.0, max_disparity=math.nan)
    assert bad.count == 5 and np.isfinite(out).sum() == 1   # only the negative one stays, invalid later
