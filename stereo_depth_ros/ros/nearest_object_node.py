"""The nearest-object node: disparity + left image in, the nearest obstacle's mask, edges,
3D edge points, distance and an RViz marker out.

Inputs (relative names): ``disparity`` (stereo_msgs/DisparityImage), ``left/image_rect`` and
``left/camera_info``, through one exact (or approximate) time synchronizer of the compat seam.
Outputs, all stamped with the disparity's header (left optical frame):

- ``nearest_object/mask``  sensor_msgs/Image mono8, 255 on the object, 0 elsewhere;
- ``nearest_object/edges`` sensor_msgs/Image mono8, 255 on the one-pixel contour of the mask;
- ``nearest_object/edge_points`` sensor_msgs/PointCloud2 (x, y, z float32; 1 x N, dense), the
  edge pixels reprojected with the disparity, optical frame;
- ``nearest_object/distance`` sensor_msgs/Range: ``range`` = robust depth of the object (5th
  percentile of its pixels' depth, metres); REP 117: +inf when nothing is in range. Range is
  chosen over std_msgs/Float32 because it carries the header (stamp + frame) and the valid
  interval (min_range = f*T / (0.9 * max_disparity): disparities in the top 10 % of the
  search range are not trusted, see nearest.drop_range_end; f*T / width when the message
  states no max_disparity; max_range = the parameter). A disparity above the stated range (or
  the image width) is never turned into a distance: it is ignored and named (``beyond_range``);
- ``nearest_object/marker`` visualization_msgs/Marker: a translucent CUBE around the object's
  3D points; a DELETE of the same ns/id when nothing is in range or the input is unusable.

Nothing in range: empty mask, empty edges, an empty cloud, distance +inf, marker DELETE; never
the previous frame's data. Unusable input (sizes that disagree, disparity without a single
valid pixel, bad camera_info or encoding): nothing but the marker DELETE is published, the
cause is counted and logged (throttled), the node keeps running. Sets whose stamp repeats or
goes back are refused and counted (input_checks.StampGuard, as the depth node); unpaired inputs
are counted and a silent input is named in /diagnostics (sync_monitor.SyncMonitor).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage
from visualization_msgs.msg import Marker

from stereo_depth_ros.geometry import CameraModelError, StereoGeometry
from stereo_depth_ros.nearest import (
    BACKENDS,
    RANGE_END_MARGIN,
    ImpossibleDisparity,
    NearestInputError,
    NearestObject,
    NearestObjectDetector,
    SizeMismatchError,
    possible_disparity,
)
from stereo_depth_ros.pointcloud import build_cloud
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.compat import SOURCES, CvBridge
from stereo_depth_ros.ros.parameters import ParameterError, device_problem
from stereo_depth_ros.ros.worker_node import RELIABILITY, WorkerNode

INPUTS = ("disparity", "left/image_rect", "left/camera_info")
COUNTERS = ("processed", "found", "nothing_in_range", "dropped_busy", "size_mismatch",
            "invalid_disparity", "bad_image", "bad_camera_info", "beyond_range", "fx_mismatch", "error",
            "zero_stamp", "future_stamp", "duplicate_stamp", "out_of_order", "time_reset", "unsynchronized",
            "input_stall")
# counters that are not skipped inputs: a time reset is accepted; unpaired left images are
# normal whenever the depth node skips a frame (they are reported per input, not as a warning)
_NOT_PROBLEMS = ("processed", "found", "nothing_in_range", "time_reset", "unsynchronized")
MARKER_NS = "nearest_object"
_BRIDGE = CvBridge()


def geometry_from_left_info(info: CameraInfo, baseline: float, width: int, height: int) -> StereoGeometry:
    """Left intrinsics from camera_info.P, the baseline from DisparityImage.T."""
    p = [float(v) for v in info.p]
    if len(p) != 12 or not p[0] > 0:
        raise CameraModelError("left camera_info has no projection matrix P: is the camera calibrated?")
    if not (math.isfinite(baseline) and baseline > 0):
        raise CameraModelError(f"DisparityImage.T (the baseline) is {baseline} m: its publisher did not "
                               "set it (the depth node takes it from the right camera_info P[3], or from "
                               "its own 'baseline' parameter for sources without one)")
    if info.width and info.height and (info.width, info.height) != (width, height):
        raise CameraModelError(f"left camera_info is for {info.width}x{info.height} images but the "
                               f"disparity is {width}x{height}")
    return StereoGeometry(fx=p[0], fy=p[5], cx=p[2], cy=p[6], cx_right=p[2], baseline=float(baseline),
                          width=width, height=height)


def stated_limit(msg: DisparityImage) -> float | None:
    """The DisparityImage's max_disparity when it states one (> 0, finite), else None."""
    value = float(msg.max_disparity)
    return value if math.isfinite(value) and value > 0 else None


def _mono8(mask: np.ndarray, header: Header) -> Image:
    return _BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(mask, dtype=np.uint8) * np.uint8(255), "mono8", header)


class NearestObjectNode(WorkerNode):
    """See the module docstring. ``**kwargs`` go to rclpy's Node (namespace, context,
    parameter_overrides, ...)."""

    error_counter = "error"
    set_name = "input set"
    newest_name = "set"
    no_sets = "no input sets"
    stall_consequence = "no nearest-object output"
    diagnostic_title = "nearest object"
    unpaired_message = ("inputs arrive but none pair up: check that disparity, left/image_rect "
                        "and left/camera_info share stamps, or set approximate_sync")
    not_problems = _NOT_PROBLEMS

    def __init__(self, node_name: str = "nearest_object_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._or_destroy(self._declare_parameters)
        p = self._param
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_latency_s = 0.0
        self.latency_total_s = 0.0
        self.last_result: NearestObject | None = None
        try:
            problem = device_problem(str(p("device")))
            if problem:
                raise ParameterError(f"parameter {problem}")
            self.detector = NearestObjectDetector(
                backend=str(p("backend")), model=str(p("model")) or None, device=str(p("device")),
                score_threshold=float(p("score_threshold")), min_area=int(p("min_area")),
                max_range=float(p("max_range")), band=float(p("threshold_band")))
        except Exception:  # no weights, bad checkpoint: leave no half-built node in the context
            super().destroy_node()
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)

        out_qos = self._output_qos()
        self.pub_mask = self.create_publisher(Image, "nearest_object/mask", out_qos)
        self.pub_edges = self.create_publisher(Image, "nearest_object/edges", out_qos)
        self.pub_points = self.create_publisher(PointCloud2, "nearest_object/edge_points", out_qos)
        self.pub_distance = self.create_publisher(Range, "nearest_object/distance", out_qos)
        self.pub_marker = self.create_publisher(Marker, "nearest_object/marker", out_qos)

        self._synchronize(INPUTS, (DisparityImage, Image, CameraInfo))
        self._start_worker()
        d = self.detector
        self.get_logger().info(
            f"backend {d.backend}" + (f" ({d.checkpoint_info.get('path')}, input "
                                      f"{d.input_size}) on {d.device}" if d.backend == "unet" else "")
            + f"; score_threshold {d.score_threshold}, min_area {d.min_area} px, max_range {d.max_range} m; "
            f"message_filters: {SOURCES['message_filters']}")

    # ---- parameters ----
    def _declare_parameters(self) -> None:
        declare = self._declare
        declare("backend", "unet", f"Segmentation: {' or '.join(BACKENDS)} (classical baseline: "
                "threshold near the maximum disparity + largest connected component)", read_only=True)
        declare("model", "", "U-Net checkpoint path; '' = the shipped weights/nearest_unet.pt",
                read_only=True)
        declare("device", "auto", "Device for the U-Net: auto (cuda when available), cuda or cpu",
                read_only=True)
        declare("score_threshold", 0.5, "U-Net probability above which a pixel is on the object",
                (0.01, 0.99))
        declare("min_area", 50, "Pixels (at the input resolution) the object must cover", (1, 10_000_000))
        declare("max_range", 20.0, "Metres: an object farther than this is 'nothing in range'",
                (0.01, 10000.0))
        declare("threshold_band", 0.15, "Threshold backend: relative disparity band below the "
                "maximum disparity", (0.01, 0.9))
        declare("max_disparity", 0.0, "Disparity normalization of the U-Net input; 0 = the "
                "DisparityImage's max_disparity", (0.0, 100000.0))
        self._declare_sync_parameters()
        declare("frame_id", "stereo_left_optical_frame",
                "Frame used when the disparity header has an empty frame_id")
        declare("input_reliability", "best_effort", "Input QoS: best_effort (sensor data) or reliable",
                read_only=True, choices=RELIABILITY)
        self._declare_output_parameters()
        declare("stall_timeout", 2.0, "Seconds one input may stay silent while the others arrive "
                "before /diagnostics names it", (0.1, 3600.0))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        d = self.detector
        for prm in params:
            if prm.name == "score_threshold":
                d.score_threshold = float(prm.value)
            elif prm.name == "min_area":
                d.min_area = int(prm.value)
            elif prm.name == "max_range":
                d.max_range = float(prm.value)
            elif prm.name == "threshold_band":
                d.band = float(prm.value)
        return SetParametersResult(successful=True)

    # ---- processing ----
    def _handle(self, msgs: tuple[Any, ...], queued_at: float) -> None:
        self.process(*msgs)

    def process(self, disparity_msg: DisparityImage, left: Image, left_info: CameraInfo) -> bool:
        """One synchronized set -> outputs; True when published. Failures are counted, not raised."""
        t0 = time.perf_counter()
        header = conv.with_frame(disparity_msg.header, str(self._param("frame_id")))
        try:
            disparity = conv.disparity_from_msg(disparity_msg)
            left_img = conv.image_to_rgb(left, "left")  # the depth node's conversion (mono16 too)
        except conv.ConversionError as exc:
            return self._reject("bad_image", str(exc), header)
        except Exception as exc:
            return self._reject("bad_image", f"cannot read the inputs: {exc}", header)
        h, w = disparity.shape
        if left_img.shape[:2] != (h, w):
            return self._reject("size_mismatch", f"left image is {left_img.shape[1]}x{left_img.shape[0]} "
                                f"but disparity is {w}x{h}", header)
        try:
            geometry = geometry_from_left_info(left_info, float(disparity_msg.t), w, h)
        except CameraModelError as exc:
            return self._reject("bad_camera_info", f"camera_info / DisparityImage.T unusable: {exc}", header)
        self._check_focal(float(disparity_msg.f), geometry.fx)
        disparity, impossible = possible_disparity(disparity, float(disparity_msg.min_disparity),
                                                   float(disparity_msg.max_disparity))
        if impossible is not None:
            self._count("beyond_range", self._impossible_text(impossible, geometry), level="warn",
                        skipped=False)
        limit = stated_limit(disparity_msg)
        max_d = float(self._param("max_disparity")) or (limit or 0.0)
        try:
            result = self.detector.detect(left_img, disparity, geometry, max_disparity=max_d,
                                          disparity_limit=limit)
        except SizeMismatchError as exc:
            return self._reject("size_mismatch", str(exc), header)
        except NearestInputError as exc:
            return self._reject("invalid_disparity", str(exc), header)
        self._publish(result, header, geometry, limit)
        dt = time.perf_counter() - t0
        with self._lock:
            self.counters["processed"] += 1
            self.counters["found" if result.found else "nothing_in_range"] += 1
            self.last_result = result
            self.last_latency_s = dt
            self.latency_total_s += dt
        return True

    def _check_focal(self, disparity_f: float, left_fx: float) -> None:
        if disparity_f > 0 and abs(disparity_f - left_fx) > 1e-3 * max(disparity_f, left_fx):
            self._count("fx_mismatch", f"DisparityImage.f {disparity_f:g} differs from the left camera_info "
                        f"fx {left_fx:g}: distances use the left fx; depth from the disparity message "
                        f"would be {disparity_f / left_fx:.3g} x them; check the calibration (processed "
                        "anyway)", level="warn", skipped=False)

    @staticmethod
    def _impossible_text(bad: ImpossibleDisparity, geometry: StereoGeometry) -> str:
        if bad.limit_from == "max_disparity":
            return (f"{bad.count} disparity pixels above the DisparityImage's max_disparity {bad.limit:g} px "
                    f"(up to {bad.worst:.4g} px), which its matcher cannot report: ignored, so an object "
                    f"nearer than {geometry.focal_baseline / bad.limit:.2f} m may be missed, or the "
                    "disparity is corrupt")
        return (f"{bad.count} disparity pixels at or above the image width {bad.limit:g} px (up to "
                f"{bad.worst:.4g} px), which no match can reach, and the DisparityImage states no "
                "max_disparity: ignored as corrupt")

    def _publish(self, r: NearestObject, header: Header, geometry: StereoGeometry,
                 limit: float | None) -> None:
        self.pub_mask.publish(_mono8(r.mask, header))
        self.pub_edges.publish(_mono8(r.edges, header))
        pts = r.edge_points.reshape(1, -1, 3)
        self.pub_points.publish(conv.cloud_msg(build_cloud(pts, None, organized=True), header))
        rng = Range(header=header, radiation_type=Range.INFRARED)
        rng.field_of_view = float(2.0 * math.atan2(geometry.width / 2.0, geometry.fx))
        # disparities in the top RANGE_END_MARGIN of the search range are not trusted; without a
        # stated range no match reaches the image width
        rng.min_range = float(geometry.focal_baseline / ((1.0 - RANGE_END_MARGIN) * limit) if limit
                              else geometry.focal_baseline / geometry.width)
        rng.max_range = float(self.detector.max_range)
        rng.range = float(r.distance) if r.found else math.inf
        self.pub_distance.publish(rng)
        self.pub_marker.publish(self._marker(r, header))

    @staticmethod
    def _marker(r: NearestObject, header: Header) -> Marker:
        m = Marker(header=header, ns=MARKER_NS, id=0)
        if not r.found or r.box_center is None:
            m.action = Marker.DELETE
            return m
        m.type, m.action = Marker.CUBE, Marker.ADD
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in r.box_center)
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = (float(v) for v in r.box_size)
        m.color.r, m.color.g, m.color.b, m.color.a = 1.0, 0.3, 0.1, 0.5
        return m

    def _reject(self, cause: str, message: str, header: Header) -> bool:
        """Count and log an unusable set; clear the marker so RViz shows nothing stale."""
        self._count(cause, message)
        try:
            self.pub_marker.publish(Marker(header=header, ns=MARKER_NS, id=0, action=Marker.DELETE))
        except Exception:  # publishing during shutdown
            pass
        return False

    # ---- reporting ----
    def _locked_summary(self) -> dict[str, Any]:
        n = max(self.counters["processed"], 1)
        return {"backend": self.detector.backend, "device": str(self.detector.device),
                "counters": dict(self.counters), "last_latency_s": self.last_latency_s,
                "mean_latency_s": self.latency_total_s / n, "last_error": self.last_error,
                **self._input_status()}

    def _diagnostic_values(self, s: dict[str, Any]) -> dict[str, str]:
        values = {**{k: str(v) for k, v in s["counters"].items()},
                  "latency_ms": f"{s['last_latency_s'] * 1000:.1f}",
                  "mean_latency_ms": f"{s['mean_latency_s'] * 1000:.1f}",
                  "synchronized_sets": str(s["synchronized_sets"]),
                  "silent_inputs": ", ".join(s["silent_inputs"])}
        values.update({f"received {k}": str(v["received"]) for k, v in s["inputs"].items()})
        values.update({f"unsynchronized {k}": str(v["unsynchronized"]) for k, v in s["inputs"].items()})
        return values


def main(args: list[str] | None = None) -> int:
    from stereo_depth_ros.estimator import CheckpointError
    from stereo_depth_ros.ros.node_main import spin_node

    return spin_node(NearestObjectNode, "nearest_object_node", args,
                     startup_errors=(CheckpointError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
