"""The stereo depth node: rectified pair in, disparity / depth / points2 out (stereo_image_proc
topics and semantics), with a learned model or OpenCV SGBM behind one interface.

Inputs (relative names, so namespaces and remaps work): left/image_rect, left/camera_info,
right/image_rect, right/camera_info, through one exact or approximate time synchronizer.
Outputs: disparity (stereo_msgs/DisparityImage), depth (32FC1 m, NaN unknown), points2
(PointCloud2 xyz+rgb, organized, NaN invalid), optional confidence (32FC1 in [0, 1]) and
/diagnostics. Work happens in one worker thread: the newest synchronized set wins, a set
replaced before the worker took it is counted as dropped_busy. Every skipped input is
counted by cause and logged (throttled); a bad frame never stops the node.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import torch
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import disparity_convention
from stereo_depth_ros.backends import BackendError, default_backend_name, make_backend
from stereo_depth_ros.backends.sgbm import SgbmBackend, SgbmParams
from stereo_depth_ros.geometry import CameraModelError, reproject
from stereo_depth_ros.pointcloud import CloudBuilder, build_cloud, depth_from_disparity
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros import input_checks as checks
from stereo_depth_ros.ros.compat import SOURCES
from stereo_depth_ros.ros.parameters import ParameterError, device_problem
from stereo_depth_ros.ros.worker_node import RELIABILITY, WorkerNode

INPUTS = ("left/image_rect", "left/camera_info", "right/image_rect", "right/camera_info")
COUNTERS = ("processed", "unsynchronized", "dropped_busy", "bad_encoding", "bad_image",
            "size_mismatch", "empty_image", "bad_layout", "image_too_large", "image_too_small",
            "bad_camera_info", "frame_mismatch", "fx_mismatch", "zero_stamp", "future_stamp",
            "duplicate_stamp", "out_of_order", "time_reset", "input_stall", "out_of_memory", "backend_error")
# counters that mean a synchronized set was refused (its frame produced no output)
REFUSALS = ("dropped_busy", "bad_encoding", "bad_image", "size_mismatch", "empty_image", "bad_layout",
            "image_too_large", "image_too_small", "bad_camera_info", "zero_stamp", "future_stamp",
            "duplicate_stamp", "out_of_order",
            "out_of_memory", "backend_error")
# parameters whose change rebuilds the backend
BACKEND_PARAMS = ("backend", "model", "device", "strict_device")
# learned backend settings that re-wrap the loaded estimator (no reload)
_OUTPUT_LIMITS = ("max_disparity", "confidence_threshold")
STAGES = ("sync", "conversion", "model", "cloud", "publish", "total")

# name -> (default, description, range) for stereo_image_proc's matcher parameters
_SGBM_INT = {
    "stereo_algorithm": ("Block Matching (0) or Semi-Global Block Matching (1); sgbm backend only",
                         (0, 1, 1)),
    "prefilter_size": ("Normalization window size in pixels, odd (BM only)", (5, 255, 2)),
    "prefilter_cap": ("Bound on normalized pixel values", (1, 63, 1)),
    "correlation_window_size": ("SAD correlation window width in pixels, odd", (5, 255, 2)),
    "min_disparity": ("Disparity to begin the search at, pixels", (-2048, 2048, 1)),
    "disparity_range": ("Number of disparities to search, pixels (multiple of 16)", (32, 4096, 16)),
    "texture_threshold": ("Filter out if the window response does not exceed this (BM only)",
                          (0, 10000, 1)),
    "speckle_size": ("Reject regions smaller than this many pixels", (0, 1000, 1)),
    "speckle_range": ("Largest disparity difference within a connected region", (0, 31, 1)),
    "disp12_max_diff": ("Largest left-right check difference, pixels (SGBM only)", (0, 128, 1)),
}
_SGBM_FLOAT = {
    "uniqueness_ratio": ("Filter out if the best match does not beat the next by this percent",
                         (0.0, 100.0)),
    "P1": ("First smoothness penalty (SGBM only)", (0.0, 4000.0)),
    "P2": ("Second smoothness penalty, > P1 (SGBM only)", (0.0, 4000.0)),
}
SGBM_PARAMS = tuple(_SGBM_INT) + tuple(_SGBM_FLOAT) + ("full_dp",)


class DepthNode(WorkerNode):
    """See the module docstring. ``**kwargs`` go to rclpy's Node (namespace, context,
    cli_args, parameter_overrides, ...), so launchers and in-process runners can build it."""

    error_counter = "backend_error"
    set_name = "stereo set"
    newest_name = "pair"
    no_sets = "no stereo pairs"
    stall_consequence = "no stereo pairs"
    diagnostic_title = "stereo depth"
    unpaired_message = ("inputs arrive but none pair up: check that the four topics share "
                        "stamps, or set approximate_sync")

    def __init__(self, node_name: str = "depth_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._or_destroy(self._declare_parameters)
        p = self._param
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_timings: dict[str, float] = {}
        self.timing_totals: dict[str, float] = {}  # summed over processed frames
        self.backend_note = ""
        self._started = time.monotonic()
        self._fps_window: list[float] = []
        self._cloud_builder = CloudBuilder()
        self._cloud_lock = threading.Lock()

        self._backend_lock = threading.Lock()
        self.backend = self._or_destroy(self._build_backend)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        out_qos = self._output_qos()
        self.pub_disparity = self.create_publisher(DisparityImage, "disparity", out_qos)
        self.pub_depth = self.create_publisher(Image, "depth", out_qos)
        self.pub_points = self.create_publisher(PointCloud2, "points2", out_qos)
        self.pub_confidence = (self.create_publisher(Image, "confidence", out_qos)
                               if p("publish_confidence") else None)

        queue_size = self._synchronize(INPUTS, (Image, CameraInfo, Image, CameraInfo))
        self._start_worker()
        self.get_logger().info(
            f"backend {self.backend.name} on {self.backend.device}{self.backend_note}; "
            f"{'approximate' if p('approximate_sync') else 'exact'} sync (queue {queue_size}); "
            f"message_filters/cv_bridge/point_cloud2: {SOURCES['message_filters']}/"
            f"{SOURCES['cv_bridge']}/{SOURCES['sensor_msgs_py']}")

    # ---- parameters ----
    def _declare_parameters(self) -> None:
        declare = self._declare
        declare("backend", "default", "Disparity backend: 'default' (the best that works here: "
                f"currently {default_backend_name()}), 'learned' or 'sgbm'; changeable at run time "
                "(a backend that cannot start is rejected with the reason)")
        declare("model", "", "Checkpoint of the learned backend: path or shipped name; '' = the "
                "shipped default")
        declare("device", "auto", "Device of the learned backend: auto, cuda or cpu (cuda without "
                "CUDA falls back to the CPU with a warning unless strict_device)")
        declare("strict_device", False, "Fail instead of falling back to the CPU when the requested "
                "device is not available")
        declare("max_disparity", 0.0, "Learned backend: largest disparity searched and reported, px "
                "(larger become NaN); 0 = the model's own range. Above the network's own range the "
                "pair runs at a reduced scale, so the whole range is covered. For sgbm use "
                "disparity_range", (0.0, 4096.0))
        declare("confidence_threshold", 0.0, "Learned backend: pixels whose model confidence is "
                "below this become NaN (fewer, more accurate pixels, as SGBM's uniqueness check); "
                "0 = keep every pixel", (0.0, 0.99))
        declare("max_image_pixels", 16_777_216, "Refuse (count, log, skip) images with more pixels "
                "than this, before decoding; 0 = no limit. 16 MP takes 4K, refuses 8K",
                (0, 1_000_000_000, 1))
        declare("reject_frame_mismatch", False, "Skip sets whose image and camera_info frame_ids "
                "differ (else they are counted and warned about, and processed)")
        declare("stall_timeout", 2.0, "Seconds one input may stay silent while the others arrive "
                "before diagnostics report a stall naming it", (0.1, 3600.0))
        self._declare_sync_parameters()
        declare("baseline", 0.0, "Stereo baseline in metres; > 0 overrides camera_info (for "
                "drivers that put 0 in the right P[3], e.g. AirSim)", (0.0, 100.0))
        declare("organized", True, "points2 as an H x W organized cloud (else only valid points)")
        declare("use_color", True, "Add the left image's rgb to points2")
        declare("frame_id", "stereo_left_optical_frame",
                "Frame used when the left camera_info header has an empty frame_id")
        declare("publish_confidence", False, "Publish the model's confidence (32FC1, 0..1) on "
                "'confidence' when the backend has one", read_only=True)
        declare("invalid_disparity", disparity_convention.DEFAULT, "How disparity marks pixels with no "
                "value: 'sentinel' = min_disparity - 1, as stereo_image_proc and the message definition "
                "('less than min_disparity is invalid'), or 'nan' (REP 118 style)", read_only=True)
        try:
            self._invalid_disparity = disparity_convention.check(self._param("invalid_disparity"))
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        declare("lazy_outputs", True, "Skip building outputs that have no subscribers")
        declare("input_reliability", "best_effort", "Input QoS: best_effort (sensor data QoS, "
                "connects to both kinds of publishers) or reliable", read_only=True, choices=RELIABILITY)
        self._declare_output_parameters()
        defaults = SgbmParams()
        for name, (description, rng) in _SGBM_INT.items():
            declare(name, int(getattr(defaults, name)), description, rng)
        for name, (description, rng) in _SGBM_FLOAT.items():
            declare(name, float(getattr(defaults, name)), description, rng)
        declare("full_dp", False, "Run the full two-pass SGBM (MODE_HH; SGBM only)")

    def _sgbm_options(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        options = {name: self._param(name) for name in SGBM_PARAMS}
        options.update({k: v for k, v in (overrides or {}).items() if k in SGBM_PARAMS})
        return options

    def _build_backend(self, changed: dict[str, Any] | None = None) -> Any:
        """The backend the parameters (with ``changed`` applied) ask for; BackendError if it
        cannot start, or if a learned-backend setting could not work even though the backend
        is sgbm (it is refused now, not when someone switches). Sets ``backend_note``."""
        values = {n: self._param(n) for n in (*BACKEND_PARAMS, *_OUTPUT_LIMITS)}
        values.update(changed or {})
        problem = device_problem(str(values["device"]))
        if problem:
            raise BackendError(problem)
        requested = str(values["backend"])
        name = default_backend_name() if requested == "default" else requested
        note = ""
        try:
            backend = self._make(name, values, changed)
        except BackendError as exc:
            if requested != "default" or name == "sgbm":
                raise
            self.get_logger().error(f"the default backend '{name}' cannot start: {exc}; "
                                    "falling back to sgbm")
            note = f" (fallback: {name} failed: {exc})"
            backend = self._make("sgbm", values, changed)
        if backend.name == "sgbm" and str(values["model"]) and (changed is None or "model" in changed):
            try:  # the same loader a switch to learned would use
                make_backend("learned", model=str(values["model"]), device="cpu")
            except BackendError as exc:
                raise BackendError(f"model {values['model']!r} cannot be used (checked although the "
                                   f"backend is sgbm): {exc}") from None
        device = str(values["device"])
        if name != "sgbm" and device.startswith("cuda") and backend.device.type != "cuda":
            note += f" (device {device!r} requested but CUDA is not available: running on the CPU)"
            self.get_logger().warning(f"device {device!r} requested but CUDA is not available: the "
                                      "learned backend runs on the CPU (set strict_device to fail instead)")
        self.backend_note = note
        return backend

    def _make(self, name: str, values: dict[str, Any], changed: dict[str, Any] | None = None) -> Any:
        if name == "sgbm":
            return make_backend("sgbm", **self._sgbm_options(changed))
        device = str(values["device"])
        if (bool(values["strict_device"]) and device.startswith("cuda")
                and not torch.cuda.is_available()):
            raise BackendError(f"device {device!r} requested but CUDA is not available, and "
                               "strict_device forbids falling back to the CPU")
        model = str(values["model"]) or "default"
        return make_backend(name, model=model, device=device,
                            max_disparity=float(values["max_disparity"]) or None,
                            confidence_threshold=float(values["confidence_threshold"]))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Run-time changes take effect at the next frame, or are rejected with the reason.
        ``params`` is one request (see WorkerNode._set_parameters_as_one): it is judged as a
        whole, so backend + model or device + strict_device change together or not at all."""
        changed = {p.name: p.value for p in params}
        try:
            new = self._backend_for(changed)
        except BackendError as exc:
            self.get_logger().warning(f"parameters {', '.join(sorted(changed))} not applied: {exc}")
            return SetParametersResult(successful=False, reason=f"backend not changed: {exc}")
        if new is None:
            return SetParametersResult(successful=True)
        with self._backend_lock:
            self.backend = new
        self.get_logger().info(f"parameters {', '.join(sorted(changed))} applied: backend {new.name} "
                               f"on {new.device}{self.backend_note}")
        return SetParametersResult(successful=True)

    def _backend_for(self, changed: dict[str, Any]) -> Any:
        """The backend after ``changed`` (None: the current one stays); BackendError if refused."""
        sgbm_changed = {k: v for k, v in changed.items() if k in SGBM_PARAMS}
        if sgbm_changed:
            try:
                SgbmParams(**self._sgbm_options(sgbm_changed)).validate()
            except TypeError as exc:
                raise BackendError(str(exc)) from None
        if any(k in changed for k in BACKEND_PARAMS):
            return self._build_backend(changed)
        if any(k in changed for k in _OUTPUT_LIMITS):
            return self._with_output_limits(changed)
        if sgbm_changed and isinstance(self.backend, SgbmBackend):
            return SgbmBackend(**self._sgbm_options(sgbm_changed))
        return None

    def _with_output_limits(self, changed: dict[str, Any]) -> Any:
        """The learned backend with new max_disparity / confidence_threshold, same estimator."""
        backend = self.backend
        estimator = getattr(backend, "estimator", None)
        if estimator is None:
            raise BackendError(f"{', '.join(k for k in _OUTPUT_LIMITS if k in changed)} applies to the "
                               f"learned backend; backend {backend.name} has disparity_range and "
                               "uniqueness_ratio instead")
        values = {n: self._param(n) for n in _OUTPUT_LIMITS}
        values.update({k: v for k, v in changed.items() if k in _OUTPUT_LIMITS})
        return type(backend)(estimator=estimator, max_disparity=float(values["max_disparity"]) or None,
                             confidence_threshold=float(values["confidence_threshold"]))

    # ---- processing ----
    def _handle(self, msgs: tuple[Any, ...], queued_at: float) -> None:
        self.process_pair(*msgs, sync_s=time.perf_counter() - queued_at)

    def process_pair(self, left: Image, left_info: CameraInfo, right: Image, right_info: CameraInfo,
                     sync_s: float = 0.0) -> bool:
        """Convert, compute, publish one synchronized set; True when outputs were published.

        Per-stage seconds of the last frame are left in ``last_timings`` (sync, conversion,
        model, cloud, publish, total). Failures are counted and logged, never raised.
        """
        t0 = time.perf_counter()
        with self._backend_lock:
            backend = self.backend
        mismatch = (checks.check_frames(left, left_info, "left")
                    or checks.check_frames(right, right_info, "right"))
        if mismatch:
            if self._param("reject_frame_mismatch"):
                return self._count("frame_mismatch", mismatch)
            self._count("frame_mismatch", mismatch + " (processed anyway; reject_frame_mismatch "
                        "skips such sets)", level="warn", skipped=False)
        try:
            max_pixels = int(self._param("max_image_pixels"))
            checks.check_image(left, "left", max_pixels)
            checks.check_image(right, "right", max_pixels)
            left_rgb, right_rgb = conv.stereo_pair_to_rgb(left, right)
            checks.check_minimum(left_rgb.shape[1], left_rgb.shape[0], backend)
            geometry = conv.geometry_from_camera_info(
                left_info, right_info, left_rgb.shape[1], left_rgb.shape[0],
                float(self._param("baseline")) or None)
        except conv.UnsupportedEncoding as exc:
            return self._count("bad_encoding", str(exc))
        except conv.EmptyImage as exc:
            return self._count("empty_image", str(exc))
        except conv.SizeMismatch as exc:
            return self._count("size_mismatch", str(exc))
        except checks.BadLayout as exc:
            return self._count("bad_layout", str(exc))
        except checks.ImageTooLarge as exc:
            return self._count("image_too_large", str(exc))
        except checks.ImageTooSmall as exc:
            return self._count("image_too_small", str(exc))
        except conv.ConversionError as exc:
            return self._count("bad_image", str(exc))
        except CameraModelError as exc:
            return self._count("bad_camera_info", f"camera_info unusable: {exc}")
        focal = checks.check_focal(left_info, right_info)
        if focal:
            self._count("fx_mismatch", focal, level="warn", skipped=False)
        header = conv.with_frame(left_info.header, str(self._param("frame_id")))
        t1 = time.perf_counter()
        try:
            result = backend.compute(left_rgb, right_rgb)
            if tuple(result.shift.shape) != left_rgb.shape[:2]:
                raise BackendError(f"backend returned {tuple(result.shift.shape)} for a "
                                   f"{left_rgb.shape[:2]} image")
            if result.shift.device.type == "cuda":
                torch.cuda.synchronize(result.shift.device)
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give the failed frame's blocks back for the next one
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return self._count("out_of_memory", f"backend {backend.name} on {backend.device} ran out of "
                               f"memory on a {left_rgb.shape[1]}x{left_rgb.shape[0]} frame ({first}); "
                               "lower max_image_pixels or the input size")
        except Exception as exc:
            return self._count("backend_error", f"backend {getattr(backend, 'name', '?')} failed: {exc}")
        t2 = time.perf_counter()
        lazy = bool(self._param("lazy_outputs"))

        def wanted(pub: Any) -> bool:
            return pub is not None and (not lazy or pub.get_subscription_count() > 0)

        disparity_dev = result.shift - geometry.doffs
        disparity = conv.to_numpy(disparity_dev)
        want_points, want_depth = wanted(self.pub_points), wanted(self.pub_depth)
        on_cpu = not disparity_dev.is_cuda
        depth = (depth_from_disparity(disparity, geometry)
                 if want_depth or (want_points and on_cpu) else None)
        # the cloud builder's buffer is reused: hold it from build to publish (rclpy copies it)
        with self._cloud_lock:
            payload = None
            if want_points:
                colours = left_rgb if self._param("use_color") else None
                organized = bool(self._param("organized"))
                if on_cpu:  # straight into the message buffer: no points array, no copies
                    payload = self._cloud_builder.build(disparity, geometry, colours, depth, organized)
                else:  # build on the GPU, one transfer at the end
                    colours = None if colours is None else torch.from_numpy(colours).to(disparity_dev.device)
                    payload = build_cloud(reproject(disparity_dev, geometry), colours, organized)
            t3 = time.perf_counter()
            if wanted(self.pub_disparity):
                self.pub_disparity.publish(conv.disparity_msg(
                    disparity, result, geometry, header, right_fx=float(right_info.p[0]),
                    invalid=self._invalid_disparity))
            if want_depth:
                self.pub_depth.publish(conv.depth_msg(depth, header))
            if payload is not None:
                self.pub_points.publish(conv.cloud_msg(payload, header))
            if wanted(self.pub_confidence) and result.confidence is not None:
                self.pub_confidence.publish(conv.depth_msg(result.confidence, header))
            t4 = time.perf_counter()
        with self._lock:
            self.counters["processed"] += 1
            now = time.monotonic()
            self._fps_window = [t for t in self._fps_window if now - t < 5.0] + [now]
            self.last_timings = {"sync": sync_s, "conversion": t1 - t0, "model": t2 - t1,
                                 "cloud": t3 - t2, "publish": t4 - t3, "total": t4 - t0 + sync_s}
            for k, v in self.last_timings.items():
                self.timing_totals[k] = self.timing_totals.get(k, 0.0) + v
        return True

    # ---- reporting ----
    def _locked_summary(self) -> dict[str, Any]:
        """Counters, rates and the last frame's stage timings."""
        now = time.monotonic()
        recent = [t for t in self._fps_window if now - t < 5.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        return {
            "backend": self.backend.name, "device": str(self.backend.device),
            "backend_note": self.backend_note.strip(" ()"),
            "counters": dict(self.counters), "fps": fps, **self._input_status(),
            "in_flight": self.monitor.in_flight()[0] + int(self._pending is not None) + int(self._busy),
            "last_timings": dict(self.last_timings), "last_error": self.last_error,
            "mean_timings": {k: v / max(self.counters["processed"], 1)
                             for k, v in self.timing_totals.items()},
            "compat": dict(SOURCES),
        }

    def _diagnostic_values(self, s: dict[str, Any]) -> dict[str, str]:
        values = {**{k: str(v) for k, v in s["counters"].items()}, "fps": f"{s['fps']:.2f}",
                  "backend": s["backend"], "device": s["device"],
                  "synchronized_sets": str(s["synchronized_sets"])}
        values.update({f"time_{k}_ms": f"{v * 1000:.1f}" for k, v in s["last_timings"].items()})
        values.update({f"received {k}": str(v["received"]) for k, v in s["inputs"].items()})
        values.update({f"unsynchronized {k}": str(v["unsynchronized"]) for k, v in s["inputs"].items()})
        values["in_flight"] = str(s["in_flight"])  # waiting for their set, queued or in processing
        values["silent_inputs"] = ", ".join(s["silent_inputs"])
        return values

    def _publish_diagnostics(self) -> tuple[dict[str, int], int]:
        c, problems = super()._publish_diagnostics()
        if problems and time.monotonic() - self._log_times.get("_summary", -1e9) >= 10.0:
            self._log_times["_summary"] = time.monotonic()
            self.get_logger().info("status: " + ", ".join(f"{k}={v}" for k, v in c.items()))
        return c, problems

    def _count_stall(self, message: str) -> None:
        now = time.monotonic()
        if now - self._log_times.get("_stall", -1e9) >= 5.0:
            self._log_times["_stall"] = now
            per = ", ".join(f"{k}: {v['received']}" for k, v in self.status_summary()["inputs"].items())
            self.get_logger().warning(f"{message} (received {per})")


def main(args: list[str] | None = None) -> int:
    from stereo_depth_ros.ros.node_main import spin_node

    return spin_node(DepthNode, "depth_node", args, startup_errors=(BackendError, ParameterError))


if __name__ == "__main__":
    sys.exit(main())
