"""The depth node over real rclpy/DDS: known geometry, synchronization, bad input, diagnostics.

Inputs are published by a harness node in the same process (reliable publishers into the
node's sensor-data subscriptions, as a driver would); outputs are received over DDS.
Tolerances (sgbm, textured planes, inside the valid window): mean |disparity error| < 0.25 px
with >= 95 % of pixels covered; depth within 2 %; points within 2 % of the true 3D point.
"""

import math
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage
from stereo_scenes import plane_pair, step_pair

from stereo_depth_ros.backends import BackendError
from stereo_depth_ros.geometry import StereoGeometry
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros._cv_bridge import CvBridge
from stereo_depth_ros.ros.compat import point_cloud2
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

H, W = 96, 160
# cx_right differs from cx by 2 px: the published disparity is the match shift minus 2
GEOM = StereoGeometry(fx=100.0, fy=100.0, cx=79.5, cy=47.5, cx_right=77.5, baseline=0.1, width=W, height=H)
SGBM = [Parameter("backend", value="sgbm"), Parameter("disparity_range", value=32),
        Parameter("correlation_window_size", value=7), Parameter("diagnostics_period", value=0.2)]
BRIDGE = CvBridge()


class Harness(Node):
    def __init__(self, ns, context):
        super().__init__("harness", namespace=ns, context=context)
        qos = QoSProfile(depth=10)
        self.pubs = {name: self.create_publisher(t, name, qos) for name, t in (
            ("left/image_rect", Image), ("left/camera_info", CameraInfo),
            ("right/image_rect", Image), ("right/camera_info", CameraInfo))}
        self.got = {"disparity": {}, "depth": {}, "points2": {}}
        for name, t in (("disparity", DisparityImage), ("depth", Image), ("points2", PointCloud2)):
            self.create_subscription(t, name, self._store(name), qos)

    def _store(self, name):
        def cb(msg):
            self.got[name][msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg
        return cb

    def messages(self, stamp_ns, left, right, geometry=GEOM, encoding="rgb8", frame="cam_left_optical"):
        def header(frame_id=frame):  # one object per message: rclpy messages share sub-messages
            h = Header(frame_id=frame_id)
            h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 10**9)
            return h

        img = {"rgb8": lambda a: a, "bgr8": lambda a: a[:, :, ::-1],
               "mono8": lambda a: a.mean(axis=2).astype(np.uint8)}
        lm = BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(img[encoding](left)), encoding, header())
        rm = BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(img[encoding](right)), encoding,
                                  header("cam_right_optical"))
        li = conv.camera_info_from_geometry(geometry, header())
        ri = conv.camera_info_from_geometry(geometry, header(), right=True, frame_id="cam_right_optical")
        return {"left/image_rect": lm, "left/camera_info": li,
                "right/image_rect": rm, "right/camera_info": ri}

    def send(self, msgs, order=None):
        for name in order or msgs:
            self.pubs[name].publish(msgs[name])

    def outputs(self, stamp_ns):
        return [self.got[k].get(stamp_ns) for k in ("disparity", "depth", "points2")]


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


def _setup(graph, ns, params):
    node = graph.add(DepthNode(namespace=ns, context=graph.context, parameter_overrides=params))
    harness = graph.add(Harness(ns, graph.context))
    assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in harness.pubs.values())
                            and node.pub_points.get_subscription_count() > 0
                            and node.pub_disparity.get_subscription_count() > 0
                            and node.pub_depth.get_subscription_count() > 0, timeout=10)
    return node, harness


def _wait_outputs(graph, harness, stamp_ns, timeout=10):
    assert graph.wait_until(lambda: all(m is not None for m in harness.outputs(stamp_ns)), timeout), \
        f"no outputs for stamp {stamp_ns}"
    return harness.outputs(stamp_ns)


@pytest.fixture(scope="module")
def node_and_harness(graph):
    return _setup(graph, "main", SGBM)


def _check_plane(disp_msg, depth_msg, cloud, shift_true, vw_min_x=None):
    d = conv.disparity_from_msg(disp_msg)
    vw = disp_msg.valid_window
    inner = d[vw.y_offset:vw.y_offset + vw.height, vw.x_offset:vw.x_offset + vw.width]
    truth = shift_true[vw.y_offset:vw.y_offset + vw.height, vw.x_offset:vw.x_offset + vw.width] - GEOM.doffs
    ok = np.isfinite(inner)
    assert ok.mean() >= 0.95
    assert np.abs(inner[ok] - truth[ok]).mean() < 0.25
    depth = conv.image_32f(depth_msg)
    z_true = GEOM.fx * GEOM.baseline / (shift_true - GEOM.doffs)
    zin = depth[vw.y_offset:vw.y_offset + vw.height, vw.x_offset:vw.x_offset + vw.width]
    zt = z_true[vw.y_offset:vw.y_offset + vw.height, vw.x_offset:vw.x_offset + vw.width]
    okz = np.isfinite(zin)
    assert np.median(np.abs(zin[okz] - zt[okz]) / zt[okz]) < 0.02
    assert np.isnan(depth[:, :5]).all() and np.isnan(d[:, :5]).all()   # left border: no match
    pts = point_cloud2.read_points(cloud, field_names=["x", "y", "z"], reshape_organized_cloud=True)
    v, u = vw.y_offset + vw.height // 2, vw.x_offset + vw.width // 2
    z = zt[vw.height // 2, vw.width // 2]
    expected = np.array([(u - GEOM.cx) * z / GEOM.fx, (v - GEOM.cy) * z / GEOM.fy, z])
    got = np.array([pts["x"][v, u], pts["y"][v, u], pts["z"][v, u]])
    assert np.allclose(got, expected, rtol=0.02, atol=0.01)
    np.testing.assert_array_equal(np.isnan(pts["z"]), np.isnan(depth))


def test_plane_at_known_depth(graph, node_and_harness):
    node, harness = node_and_harness
    shift = 12  # published disparity 10 -> Z = 100 * 0.1 / 10 = 1.0 m
    left, right = plane_pair(H, W, shift, seed=1)
    stamp = 1_000_000_123
    harness.send(harness.messages(stamp, left, right))
    disp, depth, cloud = _wait_outputs(graph, harness, stamp)
    _check_plane(disp, depth, cloud, np.full((H, W), float(shift), np.float32))
    # DisparityImage as stereo_msgs defines it
    assert disp.header.frame_id == "cam_left_optical" and disp.header.stamp.nanosec == 123
    assert disp.image.header.stamp == disp.header.stamp and disp.image.encoding == "32FC1"
    assert disp.f == pytest.approx(GEOM.fx) and disp.t == pytest.approx(GEOM.baseline)
    assert (disp.min_disparity, disp.max_disparity) == (pytest.approx(-2.0), pytest.approx(29.0))
    assert disp.delta_d == pytest.approx(1 / 16)
    vw = disp.valid_window  # stereo_image_proc: x = range + min + border - 1 = 32 + 0 + 3 - 1
    assert (vw.x_offset, vw.y_offset, vw.width, vw.height) == (34, 3, W - 1 - 3 - 34, H - 1 - 3 - 3)
    # depth and points2: same header; points2 fields, layout, NaN where invalid
    assert depth.header == disp.header and cloud.header == disp.header
    assert depth.encoding == "32FC1"
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (H, W, 16, False)
    rgb = point_cloud2.read_points(cloud, field_names=["rgb"], reshape_organized_cloud=True)["rgb"]
    bits = rgb.view(np.uint32)[50, 80]
    assert [(bits >> 16) & 255, (bits >> 8) & 255, bits & 255] == left[50, 80].tolist()
    assert set(node.last_timings) == {"sync", "conversion", "model", "cloud", "publish", "total"}


def test_step_scene(graph, node_and_harness):
    node, harness = node_and_harness
    left, right, gt_shift = step_pair(H, W, 6, 20, seed=4)
    stamp = 2_000_000_000
    harness.send(harness.messages(stamp, left, right, encoding="bgr8"))
    disp, depth, _ = _wait_outputs(graph, harness, stamp)
    d = conv.disparity_from_msg(disp)
    vw = disp.valid_window
    for rows in (slice(vw.y_offset, H // 2 - 6), slice(H // 2 + 6, vw.y_offset + vw.height)):
        cols = slice(vw.x_offset, vw.x_offset + vw.width)
        got, want = d[rows, cols], gt_shift[rows, cols]
        ok = np.isfinite(got)
        assert ok.mean() > 0.9 and np.abs(got[ok] - (want[ok] - GEOM.doffs)).mean() < 0.25
    z = conv.image_32f(depth)
    assert z[80, 100] == pytest.approx(10.0 / 18.0, rel=0.02)   # near: d = 20 - 2
    assert z[20, 100] == pytest.approx(10.0 / 4.0, rel=0.03)    # far: d = 6 - 2


def test_bad_inputs_are_counted_and_the_next_frame_served(graph, node_and_harness):
    node, harness = node_and_harness
    left, right = plane_pair(H, W, 12, seed=2)
    good_stamp = 3_000_000_000
    cases = []
    m = harness.messages(good_stamp + 1, left, right)
    m["left/image_rect"].encoding = "yuv422"
    cases.append(("bad_encoding", "'yuv422'", m))
    m = harness.messages(good_stamp + 2, left, right)
    m["right/image_rect"] = BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(right[:, :100]), "rgb8",
                                                 m["right/image_rect"].header)
    cases.append(("size_mismatch", "160x96 but right is 100x96", m))
    m = harness.messages(good_stamp + 3, left, right)
    m["right/camera_info"].p[3] = 0.0
    cases.append(("bad_camera_info", "baseline", m))
    m = harness.messages(good_stamp + 4, left, right)
    m["left/image_rect"] = Image(header=m["left/image_rect"].header, encoding="rgb8")
    cases.append(("empty_image", "empty", m))
    for cause, text, msgs in cases:
        before = node.counters[cause]
        harness.send(msgs)
        assert graph.wait_until(lambda c=cause, b=before: node.counters[c] > b, timeout=10), cause
        assert text in node.last_error
    good = good_stamp + 10
    harness.send(harness.messages(good, left, right))
    disp, _, _ = _wait_outputs(graph, harness, good)
    assert np.nanmedian(conv.disparity_from_msg(disp)) == pytest.approx(10.0, abs=0.2)
    for stamp in range(good_stamp + 1, good_stamp + 5):
        assert harness.got["disparity"].get(stamp) is None


def test_exact_sync_pairs_the_right_frames_and_counts_the_rest(graph, node_and_harness):
    node, harness = node_and_harness
    a = plane_pair(H, W, 8, seed=11)
    b = plane_pair(H, W, 16, seed=12)
    ta, tb = 4_000_000_000, 4_100_000_000
    ma, mb = harness.messages(ta, *a), harness.messages(tb, *b)
    for name in ma:                 # interleaved frames
        harness.pubs[name].publish(ma[name])
        harness.pubs[name].publish(mb[name])
    assert graph.wait_until(lambda: harness.got["disparity"].get(tb) is not None, timeout=10)
    for stamp, shift in ((ta, 8), (tb, 16)):
        msg = harness.got["disparity"].get(stamp)
        if msg is not None:  # frame a may lose to b (latest wins): then it is counted as dropped
            assert np.nanmedian(conv.disparity_from_msg(msg)) == pytest.approx(shift - 2, abs=0.2)
    if harness.got["disparity"].get(ta) is None:
        assert node.counters["dropped_busy"] >= 1
    # a left/right stamp mismatch never pairs under exact sync and is counted
    before = node.status_summary()["counters"]["unsynchronized"]
    tc = 4_200_000_000
    mc = harness.messages(tc, *a)
    mc["right/image_rect"].header.stamp.nanosec = 1_000_000   # 1 ms off
    mc["right/camera_info"].header.stamp.nanosec = 1_000_000
    harness.send(mc)
    td = 4_300_000_000
    harness.send(harness.messages(td, *b))
    _wait_outputs(graph, harness, td)
    assert harness.got["disparity"].get(tc) is None
    summary = node.status_summary()
    assert summary["counters"]["unsynchronized"] >= before + 2
    assert summary["inputs"]["left/image_rect"]["unsynchronized"] >= 1


def test_approximate_sync_with_skew(graph):
    node, harness = _setup(graph, "approx", SGBM + [Parameter("approximate_sync", value=True),
                                                    Parameter("slop", value=0.02)])
    frames = [plane_pair(H, W, s, seed=20 + s) for s in (8, 12, 16)]
    base = 5_000_000_000

    def check(k):
        t = base + k * 100_000_000
        assert graph.wait_until(lambda: harness.got["disparity"].get(t) is not None, timeout=10)
        d = conv.disparity_from_msg(harness.got["disparity"][t])
        assert np.nanmedian(d) == pytest.approx((8, 12, 16)[k] - 2, abs=0.2)

    for k, (left, right) in enumerate(frames + [frames[0]]):
        t = base + k * 100_000_000
        ml = harness.messages(t, left, right)
        mr = harness.messages(t + 7_000_000, left, right)   # right camera 7 ms later (AirSim-like)
        msgs = {"left/image_rect": ml["left/image_rect"], "left/camera_info": ml["left/camera_info"]}
        if k < len(frames):
            msgs.update({name: mr[name] for name in ("right/image_rect", "right/camera_info")})
        harness.send(msgs)
        if k:  # ApproximateTime sends a skewed pair once the next left frame proves it best
            check(k - 1)
    assert node.counters["processed"] == 3


def test_diagnostics_and_parameters(graph, node_and_harness):
    from diagnostic_msgs.msg import DiagnosticArray

    node, harness = node_and_harness
    seen = []
    sub = harness.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    name = node.get_fully_qualified_name()
    assert graph.wait_until(lambda: any(s.name.startswith(name) for m in seen for s in m.status), timeout=5)
    status = next(s for m in reversed(seen) for s in m.status if s.name.startswith(name))
    values = {kv.key: kv.value for kv in status.values}
    for key in ("processed", "unsynchronized", "dropped_busy", "bad_encoding", "size_mismatch",
                "bad_camera_info", "empty_image", "backend_error"):
        assert key in values
    assert int(values["processed"]) == node.counters["processed"] > 0
    harness.destroy_subscription(sub)
    desc = node.describe_parameters(["disparity_range", "baseline", "backend"])
    assert desc[0].integer_range[0].step == 16 and desc[0].description
    assert desc[1].floating_point_range[0].from_value == 0.0
    assert "sgbm" in desc[2].description
    # SGBM parameters are validated and applied at run time, as in stereo_image_proc
    bad = node.set_parameters([Parameter("correlation_window_size", value=8)])[0]
    assert not bad.successful
    ok = node.set_parameters([Parameter("uniqueness_ratio", value=10.0)])[0]
    assert ok.successful and node.backend.params.uniqueness_ratio == 10.0


def test_baseline_override_for_zero_baseline_camera(graph):
    node, harness = _setup(graph, "airsim", SGBM + [Parameter("baseline", value=0.1)])
    left, right = plane_pair(H, W, 12, seed=3)
    msgs = harness.messages(6_000_000_000, left, right, frame="")
    msgs["right/camera_info"].p[3] = 0.0           # AirSim: no baseline in P
    harness.send(msgs)
    disp, depth, cloud = _wait_outputs(graph, harness, 6_000_000_000)
    assert disp.t == pytest.approx(0.1)
    assert np.nanmedian(conv.image_32f(depth)) == pytest.approx(1.0, rel=0.02)
    assert cloud.header.frame_id == "stereo_left_optical_frame"   # empty frame_id -> fallback


def test_explicit_learned_backend_that_cannot_load_fails_clearly(graph):
    with pytest.raises(BackendError, match="learned"):
        DepthNode(namespace="broken", context=graph.context,
                  parameter_overrides=[Parameter("backend", value="learned"),
                                       Parameter("model", value="/nonexistent/model.pt")])


def test_process_pair_direct_timings(graph, node_and_harness):
    node, harness = node_and_harness
    left, right = plane_pair(H, W, 12, seed=9)
    m = harness.messages(7_000_000_000, left, right)
    t = time.perf_counter()
    assert node.process_pair(m["left/image_rect"], m["left/camera_info"], m["right/image_rect"],
                             m["right/camera_info"])
    assert time.perf_counter() - t >= node.last_timings["total"] > 0
    assert all(math.isfinite(v) and v >= 0 for v in node.last_timings.values())
