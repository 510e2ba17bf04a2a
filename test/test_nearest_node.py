"""The nearest-object node over real rclpy/DDS on synthetic scenes with a known nearest object.

Scene (the package's generator, 160x120, fx 100, B 0.12 m, exact disparity): a textured wall
at 8 m, a quad at 4 m and the nearest object, a fronto-parallel quad at 2 m. Bounds:
- threshold backend (exact disparity): mask IoU >= 0.95, every edge pixel on the object's
  boundary (within 1 px), edge points and distance within 2 % of 2 m;
- shipped U-Net (skipped without weights/nearest_unet.pt): mask IoU >= 0.7, 90 % of edge
  pixels within 2 px of the boundary, median edge depth and distance within 5 % of 2 m;
- nothing in range: empty mask/edges/cloud, Range +inf, marker DELETE;
- bad inputs (sizes that disagree, all-NaN disparity): counted, marker DELETE, node alive;
- repeated and out-of-order stamps refused and counted; mono16 left images accepted;
  matcher outliers at the end of the search range ignored; a disparity that never pairs is
  counted as unsynchronized and the silent inputs are named in /diagnostics.
"""

import math
import time

import cv2
import numpy as np
import pytest
import torch
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage
from visualization_msgs.msg import Marker

from stereo_depth_ros.backends.base import DisparityResult
from stereo_depth_ros.data.raycast import Shape
from stereo_depth_ros.data.synthetic import SceneObject, fronto_parallel_plane_scene, render
from stereo_depth_ros.evaluation.metrics import segmentation_metrics
from stereo_depth_ros.nearest import RANGE_END_MARGIN, default_model_path
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros._cv_bridge import CvBridge
from stereo_depth_ros.ros.compat import point_cloud2
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.ros.nearest_object_node import NearestObjectNode
from stereo_depth_ros.training.nearest import make_rig

pytestmark = pytest.mark.ros

W, H = 160, 120
RIG = make_rig(W, H)
GEOM = RIG.geometry()
NEAR_Z = 2.0
MAX_DISPARITY = 32.0  # the generator's bound at this width, as a depth node would report it
OUTPUTS = {"mask": Image, "edges": Image, "edge_points": PointCloud2, "distance": Range, "marker": Marker}
BRIDGE = CvBridge()


def known_scene():
    scene = fronto_parallel_plane_scene(8.0, seed=3)
    facing = scene.objects[0].shape.rotation
    mid = fronto_parallel_plane_scene(4.0, seed=4).objects[0].material
    near = fronto_parallel_plane_scene(NEAR_Z, seed=5).objects[0].material
    scene.objects.append(SceneObject(Shape("quad", [1.2, -0.6, 4.0], facing, [0.6, 0.5, 0]), mid, 2))
    scene.objects.append(SceneObject(Shape("quad", [-0.3, 0.2, NEAR_Z], facing, [0.35, 0.3, 0]), near, 3))
    s = render(scene, RIG, photometric=False)
    return s.left, s.disparity.astype(np.float32), s.instances == 3


def boundary(mask):
    p = np.pad(mask, 1, constant_values=False)
    return mask & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])


def distance_to(mask_pixels):
    """Distance (px) from every pixel to the nearest pixel of ``mask_pixels``."""
    return cv2.distanceTransform((~mask_pixels).astype(np.uint8), cv2.DIST_L2, 3)


class Harness(Node):
    def __init__(self, ns, context):
        super().__init__("nearest_harness", namespace=ns, context=context)
        qos = QoSProfile(depth=10)
        self.pubs = {name: self.create_publisher(t, name, qos) for name, t in (
            ("disparity", DisparityImage), ("left/image_rect", Image), ("left/camera_info", CameraInfo))}
        self.got = {name: {} for name in OUTPUTS}
        for name, t in OUTPUTS.items():
            self.create_subscription(t, f"nearest_object/{name}", self._store(name), qos)

    def _store(self, name):
        def cb(msg):
            self.got[name][msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = msg
        return cb

    def send(self, stamp_ns, left, disparity, info_size=None, only=None, encoding="rgb8"):
        def header():
            h = Header(frame_id="cam_left_optical")
            h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 10**9)
            return h

        dh, dw = disparity.shape
        result = DisparityResult(shift=torch.from_numpy(disparity), confidence=None, min_disparity=0.0,
                                 max_disparity=MAX_DISPARITY, delta_d=1 / 16, valid_window=(0, 0, dw, dh))
        geom = GEOM if info_size is None else GEOM.scaled(info_size[0] / W)
        if only in (None, "left/camera_info"):
            self.pubs["left/camera_info"].publish(conv.camera_info_from_geometry(geom, header()))
        if only in (None, "left/image_rect"):
            image = BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(left), encoding, header())
            self.pubs["left/image_rect"].publish(image)
        if only in (None, "disparity"):
            self.pubs["disparity"].publish(conv.disparity_msg(disparity, result, GEOM, header()))

    def outputs(self, stamp_ns):
        return {name: self.got[name].get(stamp_ns) for name in OUTPUTS}


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


@pytest.fixture(scope="module")
def scene():
    return known_scene()


def setup_node(graph, ns, params):
    node = graph.add(NearestObjectNode(namespace=ns, context=graph.context, parameter_overrides=params))
    harness = graph.add(Harness(ns, graph.context))
    assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in harness.pubs.values())
                            and node.pub_marker.get_subscription_count() > 0
                            and node.pub_points.get_subscription_count() > 0, timeout=10)
    return node, harness


def frame(graph, harness, stamp, left, disparity, **kw):
    harness.send(stamp, left, disparity, **kw)
    assert graph.wait_until(lambda: all(m is not None for m in harness.outputs(stamp).values()), 15), \
        f"no complete output set for stamp {stamp}: {harness.outputs(stamp)}"
    out = harness.outputs(stamp)
    mask = BRIDGE.imgmsg_to_cv2(out["mask"]) > 0
    edges = BRIDGE.imgmsg_to_cv2(out["edges"]) > 0
    pts = point_cloud2.read_points(out["edge_points"], field_names=["x", "y", "z"])
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=-1).reshape(-1, 3) if len(pts) else np.zeros((0, 3))
    return mask, edges, xyz, out


@pytest.fixture(scope="module")
def threshold_node(graph):
    return setup_node(graph, "thr", [Parameter("backend", value="threshold"),
                                     Parameter("min_area", value=50),
                                     Parameter("diagnostics_period", value=0.2)])


def check_object(mask, edges, xyz, out, truth, iou_min, edge_px, edge_share, z_tol):
    iou = segmentation_metrics(mask, truth)["iou"]
    assert iou >= iou_min, f"mask IoU {iou:.3f} < {iou_min}"
    assert edges.any() and not (edges & ~mask).any()
    assert (edges == boundary(mask)).mean() > 0.99  # the one-pixel contour of the published mask
    d = distance_to(boundary(truth))[edges]
    assert np.mean(d <= edge_px) >= edge_share, f"edge pixels off the true boundary: {np.sort(d)[-10:]}"
    assert xyz.shape == (edges.sum(), 3) and np.isfinite(xyz).all()
    assert abs(np.median(xyz[:, 2]) - NEAR_Z) <= z_tol * NEAR_Z
    assert np.mean(np.abs(xyz[:, 2] - NEAR_Z) <= z_tol * NEAR_Z) >= edge_share
    # x, y of the edge points: the quad spans x in [-0.65, 0.05], y in [-0.1, 0.5] at 2 m
    assert -0.7 <= np.percentile(xyz[:, 0], 5) and np.percentile(xyz[:, 0], 95) <= 0.1
    assert -0.15 <= np.percentile(xyz[:, 1], 5) and np.percentile(xyz[:, 1], 95) <= 0.55
    r = out["distance"]
    assert r.header.frame_id == "cam_left_optical"
    assert abs(r.range - NEAR_Z) <= z_tol * NEAR_Z
    # the top RANGE_END_MARGIN of the search range is not trusted: nothing nearer is reported
    assert r.min_range == pytest.approx(GEOM.focal_baseline / ((1 - RANGE_END_MARGIN) * MAX_DISPARITY),
                                        rel=1e-3)
    m = out["marker"]
    assert m.action == Marker.ADD and m.type == Marker.CUBE and m.header.frame_id == "cam_left_optical"
    assert abs(m.pose.position.z - NEAR_Z) < 0.1 and m.scale.x == pytest.approx(0.7, abs=0.15)


def test_threshold_backend_finds_the_nearest_object(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, truth = scene
    mask, edges, xyz, out = frame(graph, harness, 1_000_000_001, left, disparity)
    check_object(mask, edges, xyz, out, truth, iou_min=0.95, edge_px=1.0, edge_share=1.0, z_tol=0.02)


def test_holes_in_the_disparity_are_tolerated(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, truth = scene
    d = disparity.copy()
    d[:, :12] = np.nan  # an invalid border, as block matching leaves
    ys, xs = np.nonzero(truth)
    d[ys.min() + 5:ys.min() + 12, :] = np.nan  # a band across the object
    mask, edges, xyz, out = frame(graph, harness, 1_000_000_002, left, d)
    assert abs(out["distance"].range - NEAR_Z) <= 0.02 * NEAR_Z
    assert np.isfinite(xyz).all() and np.allclose(xyz[:, 2], NEAR_Z, rtol=0.02)


def test_nothing_in_range_publishes_empty_outputs(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, _ = scene
    node.set_parameters([Parameter("max_range", value=1.5)])
    try:
        mask, edges, xyz, out = frame(graph, harness, 1_000_000_003, left, disparity)
    finally:
        node.set_parameters([Parameter("max_range", value=20.0)])
    assert not mask.any() and not edges.any() and xyz.shape[0] == 0
    assert out["edge_points"].width == 0
    assert out["distance"].range == math.inf and out["distance"].max_range == pytest.approx(1.5)
    assert out["marker"].action == Marker.DELETE
    # and back in range on the next frame: no stale state either way
    mask, _, _, out = frame(graph, harness, 1_000_000_004, left, disparity)
    assert mask.any() and out["distance"].range == pytest.approx(NEAR_Z, rel=0.02)


def test_bad_inputs_are_counted_and_the_node_keeps_going(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, _ = scene
    before = dict(node.counters)
    small = cv2.resize(left, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    harness.send(1_000_000_010, small, disparity)  # left image 80x60, disparity 160x120
    assert graph.wait_until(lambda: node.counters["size_mismatch"] > before["size_mismatch"], 10)
    harness.send(1_000_000_011, left, np.full((H, W), np.nan, np.float32))
    assert graph.wait_until(lambda: node.counters["invalid_disparity"] > before["invalid_disparity"], 10)
    assert graph.wait_until(lambda: harness.got["marker"].get(1_000_000_011) is not None, 5)
    assert harness.got["marker"][1_000_000_011].action == Marker.DELETE
    assert harness.got["mask"].get(1_000_000_010) is None and harness.got["mask"].get(1_000_000_011) is None
    assert harness.got["distance"].get(1_000_000_011) is None  # no claim of a clear path
    assert "no valid pixel" in node.last_error
    mask, _, _, out = frame(graph, harness, 1_000_000_012, left, disparity)
    assert mask.any() and node.counters["processed"] > before["processed"]


@pytest.mark.skipif(not default_model_path().is_file(), reason="shipped nearest_unet.pt not present")
def test_shipped_unet_finds_the_nearest_object(graph, scene):
    node, harness = setup_node(graph, "unet", [Parameter("backend", value="unet"),
                                               Parameter("device", value="cpu"),
                                               Parameter("min_area", value=50)])
    left, disparity, truth = scene
    mask, edges, xyz, out = frame(graph, harness, 2_000_000_001, left, disparity)
    check_object(mask, edges, xyz, out, truth, iou_min=0.7, edge_px=2.0, edge_share=0.9, z_tol=0.05)
    assert node.status_summary()["last_latency_s"] > 0


def test_missing_weights_is_a_clear_start_error(graph, tmp_path):
    from stereo_depth_ros.estimator import CheckpointError

    with pytest.raises(CheckpointError, match="train-nearest"):
        NearestObjectNode(namespace="nomodel", context=graph.context,
                          parameter_overrides=[Parameter("backend", value="unet"),
                                               Parameter("model", value=str(tmp_path / "none.pt"))])


def test_repeated_and_older_stamps_are_refused_and_counted(graph, scene):
    node, harness = setup_node(graph, "stamps", [Parameter("backend", value="threshold")])
    left, disparity, _ = scene
    frame(graph, harness, 3_000_000_010, left, disparity)
    before = dict(node.counters)
    harness.send(3_000_000_010, left, disparity)  # the same stamp again
    assert graph.wait_until(lambda: node.counters["duplicate_stamp"] > before["duplicate_stamp"], 10)
    harness.got["mask"].clear()
    harness.send(3_000_000_005, left, disparity)  # 5 ns older than the last accepted set
    assert graph.wait_until(lambda: node.counters["out_of_order"] > before["out_of_order"], 10)
    frame(graph, harness, 3_000_000_020, left, disparity)  # newer: processed again
    assert harness.got["mask"].get(3_000_000_005) is None  # no output for the older stamp
    assert node.counters["processed"] == before["processed"] + 1


def test_mono16_left_image_is_accepted(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, truth = scene
    gray = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 16  # 12-bit data
    before = node.counters["bad_image"]
    harness.send(1_000_000_020, gray, disparity, encoding="mono16")
    done = graph.wait_until(lambda: all(m is not None for m in harness.outputs(1_000_000_020).values()), 15)
    assert done, f"no output for a mono16 image ({node.last_error})"
    mask = BRIDGE.imgmsg_to_cv2(harness.outputs(1_000_000_020)["mask"]) > 0
    assert node.counters["bad_image"] == before
    assert segmentation_metrics(mask, truth)["iou"] >= 0.95


def test_outliers_at_the_end_of_the_search_range_are_not_the_object(graph, threshold_node, scene):
    node, harness = threshold_node
    left, disparity, truth = scene
    d = disparity.copy()
    d[5:20, 120:135] = 0.98 * MAX_DISPARITY  # a blob of wrong matches on the wall, as SGBM leaves
    mask, _, _, out = frame(graph, harness, 1_000_000_030, left, d)
    assert segmentation_metrics(mask, truth)["iou"] >= 0.95
    assert out["distance"].range == pytest.approx(NEAR_Z, rel=0.02)


def test_unpaired_inputs_are_counted_and_a_silent_input_is_named(graph, scene):
    from diagnostic_msgs.msg import DiagnosticArray

    node, harness = setup_node(graph, "unpaired", [Parameter("backend", value="threshold"),
                                                   Parameter("queue_size", value=3),
                                                   Parameter("stall_timeout", value=0.5),
                                                   Parameter("diagnostics_period", value=0.2)])
    diags = []
    harness.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    left, disparity, _ = scene
    for i in range(8):  # disparity only: the left image and its camera_info never come
        harness.send(4_000_000_000 + i, left, disparity, only="disparity")
        time.sleep(0.15)

    def named() -> bool:
        return any(st.name.startswith(node.get_fully_qualified_name()) and "left/image_rect" in st.message
                   for a in diags for st in a.status)

    assert graph.wait_until(named, 10), [st.message for a in diags[-3:] for st in a.status]
    summary = node.status_summary()
    assert summary["inputs"]["disparity"]["received"] == 8
    assert summary["inputs"]["disparity"]["unsynchronized"] >= 5  # pushed out of a queue of 3
    assert summary["counters"]["unsynchronized"] >= 5
    assert node.counters["input_stall"] == 1 and node.counters["processed"] == 0
