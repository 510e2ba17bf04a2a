"""The package's own message_filters / cv_bridge / point_cloud2 equivalents, tested directly."""

import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header

from stereo_depth_ros.ros import _cv_bridge, _message_filters, _point_cloud2, compat


class Source(_message_filters.SimpleFilter):
    def push(self, msg):
        self.signalMessage(msg)


def msg_at(ns, cls=Image, frame="f"):
    m = cls()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    m.header.frame_id = frame
    return m


def stamps(out):
    return [tuple(_message_filters._stamp_ns(m) for m in group) for group in out]


def make(sync_cls, n=2, **kw):
    sources = [Source() for _ in range(n)]
    sync = sync_cls(sources, **kw)
    out = []
    sync.registerCallback(lambda *msgs: out.append(msgs))
    return sources, out


def test_compat_exposes_the_api():
    assert set(compat.SOURCES) == {"message_filters", "cv_bridge", "sensor_msgs_py"}
    for name in ("Subscriber", "TimeSynchronizer", "ApproximateTimeSynchronizer"):
        assert hasattr(compat.message_filters, name)
    bridge = compat.CvBridge()
    assert hasattr(bridge, "imgmsg_to_cv2") and hasattr(bridge, "cv2_to_imgmsg")
    assert hasattr(compat.point_cloud2, "create_cloud") and hasattr(compat.point_cloud2, "read_points")


def test_exact_pairs_same_stamps_only():
    (a, b), out = make(_message_filters.TimeSynchronizer, queue_size=5)
    a.push(msg_at(100))
    b.push(msg_at(101))          # no partner
    a.push(msg_at(200))
    assert out == []
    b.push(msg_at(200))
    assert stamps(out) == [(200, 200)]
    b.push(msg_at(100))          # older than the last set: its partner was discarded
    assert len(out) == 1


def test_exact_out_of_order_and_extra_args():
    sources = [Source(), Source(), Source()]
    sync = _message_filters.TimeSynchronizer(sources, 10)
    out = []
    sync.registerCallback(lambda *args: out.append(args), "tag")
    for ns in (300, 100, 200):
        sources[0].push(msg_at(ns))
        sources[1].push(msg_at(ns))
    sources[2].push(msg_at(100))
    sources[2].push(msg_at(300))
    sources[2].push(msg_at(200))  # 200 was dropped when the 300 set completed
    assert [tuple(_message_filters._stamp_ns(m) for m in g[:3]) for g in out] == [(100,) * 3, (300,) * 3]
    assert all(g[3] == "tag" for g in out)


def test_exact_queue_limit_drops_oldest():
    (a, b), out = make(_message_filters.TimeSynchronizer, queue_size=2)
    for ns in (1, 2, 3):
        a.push(msg_at(ns))
    b.push(msg_at(1))
    assert out == []             # stamp 1 fell out of a's queue of 2
    b.push(msg_at(2))
    assert stamps(out) == [(2, 2)]


def test_approximate_pairs_within_slop_choosing_closest():
    """ApproximateTime (message_filters' C++ policy): a skewed set leaves once the next message
    of its earliest input proves that no closer set can come; a set wider than slop is never
    formed."""
    (a, b), out = make(_message_filters.ApproximateTimeSynchronizer, queue_size=10, slop=0.01)
    a.push(msg_at(1_000_000_000))
    b.push(msg_at(1_004_000_000))               # 4 ms: the best set so far, b is the pivot
    assert out == []                            # an a at 1.003 would still make a closer one
    a.push(msg_at(1_026_000_000))               # a's next is later than b: (1.000, 1.004) is best
    assert stamps(out) == [(1_000_000_000, 1_004_000_000)]
    b.push(msg_at(1_020_000_000))               # 6 ms from a@1.026
    b.push(msg_at(1_040_000_000))
    assert stamps(out)[1:] == [(1_026_000_000, 1_020_000_000)]
    a.push(msg_at(2_000_000_000))
    b.push(msg_at(2_020_000_000))               # 20 ms > slop: a@2.000 is never used
    a.push(msg_at(2_030_000_000))
    b.push(msg_at(2_040_000_000))
    assert stamps(out)[2:] == [(2_030_000_000, 2_020_000_000)]


def test_approximate_picks_the_tightest_set():
    (a, b, c), out = make(_message_filters.ApproximateTimeSynchronizer, n=3, queue_size=10, slop=0.05)
    a.push(msg_at(1_000))
    a.push(msg_at(40_000_000))
    b.push(msg_at(2_000_000))
    b.push(msg_at(38_000_000))
    c.push(msg_at(39_000_000))   # pivot c@39 ms: (0, 2, 39) spans 39 ms, (40, 38, 39) 2 ms
    assert out == []             # a b@39.5 ms could still make a tighter one
    b.push(msg_at(100_000_000))
    assert stamps(out) == [(40_000_000, 38_000_000, 39_000_000)]


def test_approximate_skew_stream():
    """A constant left/right skew inside slop pairs every frame with its own partner, each pair
    leaving when the next left frame arrives (one frame period, as in stereo_image_proc)."""
    (a, b), out = make(_message_filters.ApproximateTimeSynchronizer, queue_size=5, slop=0.02)
    for k in range(10):
        a.push(msg_at(k * 100_000_000))
        b.push(msg_at(k * 100_000_000 + 7_000_000))
        assert len(out) == k
    a.push(msg_at(10 * 100_000_000))
    assert stamps(out) == [(k * 100_000_000, k * 100_000_000 + 7_000_000) for k in range(10)]
    (a, b), out = make(_message_filters.ApproximateTimeSynchronizer, queue_size=5, slop=0.02)
    for k in range(3):       # equal stamps (one driver stamps both cameras): no wait at all
        a.push(msg_at(k * 100_000_000))
        b.push(msg_at(k * 100_000_000))
        assert len(out) == k + 1


def test_approximate_queue_limit():
    (a, b), out = make(_message_filters.ApproximateTimeSynchronizer, queue_size=2, slop=0.5)
    a.push(msg_at(0))
    a.push(msg_at(2_000_000_000))
    a.push(msg_at(4_000_000_000))               # evicts a@0
    b.push(msg_at(100_000_000))                 # only a@0 was within slop
    assert out == []
    with pytest.raises(ValueError):
        _message_filters.ApproximateTimeSynchronizer([a, b], 2, -1.0)


# ---- cv_bridge ----

CASES = [("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("rgb8", np.uint8, 3), ("bgr8", np.uint8, 3),
         ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4), ("32FC1", np.float32, 1), ("16UC1", np.uint16, 1)]


@pytest.mark.parametrize("encoding,dtype,channels", CASES)
def test_bridge_round_trip(encoding, dtype, channels):
    rng = np.random.default_rng(0)
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    img = (rng.random(shape) * 200).astype(dtype)
    bridge = _cv_bridge.CvBridge()
    msg = bridge.cv2_to_imgmsg(img, encoding, header=Header(frame_id="cam"))
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, "cam")
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    back = bridge.imgmsg_to_cv2(msg)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, img)


def test_bridge_padded_rows_and_big_endian():
    img = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    msg = Image(height=4, width=3, encoding="rgb8", step=12)  # 3 bytes of padding per row
    padded = np.zeros((4, 12), np.uint8)
    padded[:, :9] = img.reshape(4, 9)
    padded[:, 9:] = 255
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(_cv_bridge.CvBridge().imgmsg_to_cv2(msg), img)
    deep = np.array([[1, 258], [65535, 4096]], dtype=">u2")
    msg16 = Image(height=2, width=2, encoding="mono16", step=4, is_bigendian=True, data=deep.tobytes())
    np.testing.assert_array_equal(_cv_bridge.CvBridge().imgmsg_to_cv2(msg16), deep.astype(np.uint16))


def test_bridge_conversions_and_errors():
    bridge = _cv_bridge.CvBridge()
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200
    msg = bridge.cv2_to_imgmsg(rgb, "rgb8")
    assert bridge.imgmsg_to_cv2(msg, "bgr8")[0, 0].tolist() == [0, 0, 200]
    assert bridge.imgmsg_to_cv2(msg, "mono8").shape == (2, 2)
    m16 = bridge.cv2_to_imgmsg(np.full((2, 2), 65535, np.uint16), "mono16")
    assert bridge.imgmsg_to_cv2(m16, "mono8").max() == 255
    with pytest.raises(_cv_bridge.CvBridgeError, match="yuv422"):
        bridge.imgmsg_to_cv2(Image(height=1, width=1, encoding="yuv422", step=2, data=b"ab"))
    with pytest.raises(_cv_bridge.CvBridgeError, match="bytes"):
        bridge.imgmsg_to_cv2(Image(height=2, width=2, encoding="mono8", step=2, data=b"ab"))
    with pytest.raises(_cv_bridge.CvBridgeError, match="channel"):
        bridge.cv2_to_imgmsg(rgb, "mono8")


# ---- point_cloud2 ----

def _fields(names):
    return [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
            for i, n in enumerate(names)]


def test_cloud_round_trip_list_and_arrays():
    pts = [(1.0, 2.0, 3.0), (float("nan"), 0.0, 0.0), (4.0, 5.0, 6.0)]
    cloud = _point_cloud2.create_cloud(Header(frame_id="f"), _fields("xyz"), pts)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 3, 12, 36)
    got = _point_cloud2.read_points(cloud, skip_nans=True)
    assert got.dtype.names == ("x", "y", "z") and len(got) == 2
    assert _point_cloud2.read_points_list(cloud, field_names=["x"], skip_nans=True) == [(1.0,), (4.0,)]
    xyz = _point_cloud2.read_points_numpy(cloud)
    assert xyz.shape == (3, 3) and np.isnan(xyz[1, 0])
    c2 = _point_cloud2.create_cloud_xyz32(Header(), np.array(pts, np.float32))
    np.testing.assert_array_equal(_point_cloud2.read_points_numpy(c2), xyz)
    assert _point_cloud2.read_points(cloud, uvs=[(2, 0)])["x"].tolist() == [4.0]


def test_cloud_organized_and_mixed_types():
    fields = _fields("xyz") + [PointField(name="i", offset=12, datatype=PointField.UINT16, count=1)]
    dtype = _point_cloud2.dtype_from_fields(fields, point_step=16)
    arr = np.zeros((2, 3), dtype=dtype)
    arr["x"] = np.arange(6).reshape(2, 3)
    arr["i"] = 7
    cloud = _point_cloud2.create_cloud(Header(), fields, arr, point_step=16)
    assert (cloud.height, cloud.width, cloud.row_step) == (2, 3, 48)
    back = _point_cloud2.read_points(cloud, reshape_organized_cloud=True)
    assert back.shape == (2, 3) and back["i"].tolist() == [[7] * 3] * 2
    np.testing.assert_array_equal(back["x"], arr["x"])


# ---- the Subscriber over real rclpy ----

@pytest.mark.ros
def test_subscriber_and_sync_over_dds():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("compat_test", context=context)
        subs = [_message_filters.Subscriber(node, Image, "cam/image"),
                _message_filters.Subscriber(node, CameraInfo, "cam/info")]
        sync = _message_filters.TimeSynchronizer(subs, 5)
        got = []
        sync.registerCallback(lambda img, info: got.append((img.header.frame_id, info.header.frame_id)))
        pub_img = node.create_publisher(Image, "cam/image", 10)
        pub_info = node.create_publisher(CameraInfo, "cam/info", 10)
        assert subs[0].getTopic() == "/cam/image"
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            pub_img.publish(msg_at(5, Image, "img"))
            pub_info.publish(msg_at(5, CameraInfo, "info"))
            executor.spin_once(timeout_sec=0.1)
        assert got and got[0] == ("img", "info")
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_sync_monitor_counts_what_never_pairs():
    from stereo_depth_ros.ros.sync_monitor import SyncMonitor

    mon = SyncMonitor(["l", "r"], window=3)
    mon.seen(0, 10)
    mon.seen(1, 11)        # never pairs with l@10
    mon.seen(0, 20)
    mon.seen(1, 20)
    mon.matched([20, 20])  # l@10 and r@11 are now hopeless
    assert mon.per_input() == {"l": (2, 1), "r": (2, 1)} and mon.unsynchronized == 2
    for s in (30, 40, 50, 60):
        mon.seen(0, s)     # the right camera stopped: the window of 3 overflows once
    assert mon.per_input()["l"] == (6, 2) and mon.sets == 1
