"""Live evaluation of a running depth node: accuracy against a ground-truth topic, end-to-end
latency and drop rate, written as a report when the run ends.

Subscribes (relative names): ``left/image_rect`` (the input, to know which stamps went in and
when), ``disparity`` (stereo_msgs/DisparityImage from the depth node), a ground-truth image
(``ground_truth/disparity``, or a depth image with ``gt_kind: depth``) and optionally ``depth``
(scored against ``ground_truth/depth``). Everything is matched by header stamp.

Latency, two ways:
- ``latency_ms``: wall (monotonic) time from when this node received the input image with a
  stamp to when it received the disparity with that stamp. Independent of the clock the
  stamps come from, so it holds for bag replay under use_sim_time too (both messages are
  observed here; a few ms of DDS delivery of the input itself are not included).
- ``stamp_latency_ms``: this node's clock at reception minus the stamp. Meaningful when the
  stamps share this node's clock (a live camera on wall time, or sim time from /clock).
Drop rate: input stamps that never produced a disparity, of all inputs seen, counted when
the report is written (inputs of the last ``grace_s`` seconds are not yet counted as dropped).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import rclpy.executors
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import disparity_convention
from stereo_depth_ros.evaluation import report
from stereo_depth_ros.evaluation.metrics import depth_metrics, stereo_metrics
from stereo_depth_ros.ros.conversions import stamp_ns

_FLOAT = {"32FC1": "<f4", "64FC1": "<f8"}


def float_image(msg: Image) -> np.ndarray:
    """32FC1/64FC1 (or 16UC1 millimetres) image message -> float32 array, NaN unknown."""
    if msg.encoding in _FLOAT:
        dt = np.dtype(_FLOAT[msg.encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    elif msg.encoding == "16UC1":
        dt = np.dtype("<u2").newbyteorder(">" if msg.is_bigendian else "<")
    else:
        raise ValueError(f"expected a 32FC1/64FC1/16UC1 image, got {msg.encoding!r}")
    row = msg.width * dt.itemsize
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if msg.step < row or data.size < msg.step * msg.height:
        raise ValueError(f"image data too short for {msg.width}x{msg.height} step {msg.step}")
    out = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row].copy().view(dt)
    out = out.astype(np.float32)
    if msg.encoding == "16UC1":
        out = np.where(out > 0, out / 1000.0, np.nan).astype(np.float32)
    return out


def _prune(buffer: dict[int, Any], keep: int = 64) -> None:
    """Forget the oldest stamps of a buffer whose partner message never came."""
    while len(buffer) > keep:
        del buffer[min(buffer)]


class EvaluatorNode(Node):
    def __init__(self, node_name: str = "evaluator", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

        def declare(name: str, default: Any, description: str) -> Any:
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
            return self.get_parameter(name).value

        self.input_topic = declare("input_topic", "left/image_rect", "Input images (stamps that went in)")
        self.disparity_topic = declare("disparity_topic", "disparity", "The depth node's DisparityImage")
        self.depth_topic = declare("depth_topic", "", "The depth node's depth image ('' = not scored)")
        self.gt_topic = declare("gt_topic", "ground_truth/disparity", "Ground truth image ('' = none)")
        self.gt_kind = declare("gt_kind", "disparity", "What gt_topic holds: disparity or depth")
        self.gt_depth_topic = declare("gt_depth_topic", "ground_truth/depth",
                                      "Ground-truth depth for depth_topic")
        self.report_path = declare("report_path", "", "Write the JSON report here at the end ('' = no file)")
        self.expected_frames = int(declare("expected_frames", 0,
                                           "Finish after this many disparities (0 = run until stopped)"))
        self.idle_timeout = float(declare("idle_timeout", 0.0,
                                          "Finish when no input or disparity came for this many seconds "
                                          "after the first (0 = never)"))
        self.grace_s = float(declare("grace_s", 1.0, "Inputs younger than this are not yet drops"))
        self.timeout = float(declare("timeout", 0.0, "Finish after this many seconds in any case "
                                     "(0 = never)"))
        if self.gt_kind not in ("disparity", "depth"):
            raise ValueError(f"gt_kind must be disparity or depth, got {self.gt_kind!r}")

        self._lock = threading.Lock()
        self.inputs: dict[int, float] = {}  # stamp -> monotonic time received
        self.gt: dict[int, np.ndarray] = {}
        self.gt_depth: dict[int, np.ndarray] = {}
        self.pending: dict[int, tuple[np.ndarray, float, float]] = {}  # stamp -> (disp, f*T, recv)
        self.pending_depth: dict[int, np.ndarray] = {}
        self.rows: list[dict[str, Any]] = []
        self.outputs: dict[int, dict[str, float]] = {}
        self.depth_rows: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.finished = threading.Event()
        self._last_activity = 0.0

        sensor = qos_profile_sensor_data
        self.create_subscription(Image, self.input_topic, self._on_input, sensor)
        self.create_subscription(DisparityImage, self.disparity_topic, self._on_disparity,
                                 QoSProfile(depth=10))
        if self.gt_topic:
            self.create_subscription(Image, self.gt_topic, self._on_gt, sensor)
        if self.depth_topic:
            self.create_subscription(Image, self.depth_topic, self._on_depth, QoSProfile(depth=10))
            if self.gt_depth_topic:
                self.create_subscription(Image, self.gt_depth_topic, self._on_gt_depth, sensor)
        self._started = time.monotonic()
        if self.idle_timeout > 0 or self.timeout > 0:
            self.create_timer(0.1, self._check_idle)
        self.get_logger().info(f"evaluating {self.disparity_topic} against "
                               f"{self.gt_topic or 'no ground truth'} ({self.gt_kind}); inputs from "
                               f"{self.input_topic}")

    # ---- callbacks ----
    def _on_input(self, msg: Image) -> None:
        now = time.monotonic()
        with self._lock:
            self.inputs.setdefault(stamp_ns(msg), now)
            self._last_activity = now

    def _on_gt(self, msg: Image) -> None:
        try:
            values = float_image(msg)
        except ValueError as exc:
            self._error(f"ground truth on {self.gt_topic}: {exc}")
            return
        stamp = stamp_ns(msg)
        with self._lock:
            self.gt[stamp] = values
            _prune(self.gt)
            pending = self.pending.pop(stamp, None)
        if pending is not None:
            self._score(stamp, *pending, gt=values)

    def _on_gt_depth(self, msg: Image) -> None:
        try:
            values = float_image(msg)
        except ValueError as exc:
            self._error(f"ground truth on {self.gt_depth_topic}: {exc}")
            return
        stamp = stamp_ns(msg)
        with self._lock:
            self.gt_depth[stamp] = values
            _prune(self.gt_depth)
            pred = self.pending_depth.pop(stamp, None)
        if pred is not None:
            self._score_depth(stamp, pred, values)

    def _on_disparity(self, msg: DisparityImage) -> None:
        received = time.monotonic()
        stamp = stamp_ns(msg)
        now_ns = self.get_clock().now().nanoseconds
        try:
            disparity = disparity_convention.decode(float_image(msg.image), msg.min_disparity)
        except ValueError as exc:
            self._error(f"disparity: {exc}")
            return
        with self._lock:
            sent = self.inputs.get(stamp)
            self.outputs[stamp] = {
                "latency_ms": (received - sent) * 1000.0 if sent is not None else float("nan"),
                "stamp_latency_ms": (now_ns - stamp) / 1e6,
            }
            self._last_activity = received
            gt = self.gt.pop(stamp, None)
            if gt is None and self.gt_topic:
                self.pending[stamp] = (disparity, msg.f * msg.t, received)
                _prune(self.pending)
        if gt is not None or not self.gt_topic:
            self._score(stamp, disparity, msg.f * msg.t, received, gt)
        if self.expected_frames and len(self.outputs) >= self.expected_frames:
            self.finished.set()

    def _on_depth(self, msg: Image) -> None:
        stamp = stamp_ns(msg)
        try:
            depth = float_image(msg)
        except ValueError as exc:
            self._error(f"depth: {exc}")
            return
        with self._lock:
            gt = self.gt_depth.pop(stamp, None)
            if gt is None:
                self.pending_depth[stamp] = depth
                _prune(self.pending_depth)
        if gt is not None:
            self._score_depth(stamp, depth, gt)

    # ---- scoring ----
    def _score(self, stamp: int, disparity: np.ndarray, focal_baseline: float, received: float,
               gt: np.ndarray | None = None) -> None:
        row: dict[str, Any] = {"stamp_ns": stamp}
        if gt is not None:
            if self.gt_kind == "depth":
                gt = np.where(gt > 0, focal_baseline / np.where(gt > 0, gt, 1.0), np.nan)
            if gt.shape != disparity.shape:
                self._error(f"stamp {stamp}: ground truth {gt.shape} and disparity {disparity.shape} differ")
            else:
                row |= stereo_metrics(disparity, gt)
        with self._lock:
            row |= self.outputs.get(stamp, {})
            self.rows.append(row)

    def _score_depth(self, stamp: int, depth: np.ndarray, gt: np.ndarray | None = None) -> None:
        if gt is None:
            with self._lock:
                gt = self.gt_depth.pop(stamp, None)
        if gt is None or gt.shape != depth.shape:
            return
        row = {f"depth_{k}": v for k, v in depth_metrics(depth, gt).items()}
        with self._lock:
            self.depth_rows.append({"stamp_ns": stamp, **row})

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        self.get_logger().error(message, throttle_duration_sec=2.0)

    def _check_idle(self) -> None:
        now = time.monotonic()
        idle = self.idle_timeout > 0 and self._last_activity and now - self._last_activity > self.idle_timeout
        if idle or (self.timeout > 0 and now - self._started > self.timeout):
            self.finished.set()

    # ---- report ----
    def summary(self) -> dict[str, Any]:
        """Accuracy, latency and drops so far, as plain values."""
        with self._lock:
            rows = list(self.rows)
            depth_rows = list(self.depth_rows)
            now = time.monotonic()
            counted = {s for s, t in self.inputs.items() if now - t >= self.grace_s or s in self.outputs}
            outputs = dict(self.outputs)
            errors = list(self.errors)
        delivered = sum(1 for s in counted if s in outputs)
        lat = np.array([o["latency_ms"] for o in outputs.values()], dtype=np.float64)
        lat = lat[np.isfinite(lat)]
        stamp_lat = np.array([o["stamp_latency_ms"] for o in outputs.values()], dtype=np.float64)

        def stats(a: np.ndarray) -> dict[str, float]:
            if not a.size:
                return {"count": 0}
            return {"count": int(a.size), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                    "mean": float(a.mean()), "max": float(a.max()), "min": float(a.min())}

        scored = [{k: v for k, v in r.items() if k not in ("latency_ms", "stamp_latency_ms")}
                  for r in rows if "epe" in r]
        accuracy = report.summarize(scored) if scored else {}
        if depth_rows:
            accuracy |= {k: v for k, v in report.summarize(depth_rows).items() if k.startswith("depth_")}
        return {
            "inputs_seen": len(self.inputs), "inputs_counted": len(counted), "outputs": len(outputs),
            "outputs_without_input": sum(1 for s in outputs if s not in self.inputs),
            "dropped": len(counted) - delivered,
            "drop_rate": (len(counted) - delivered) / len(counted) if counted else float("nan"),
            "latency_ms": stats(lat), "stamp_latency_ms": stats(stamp_lat),
            "use_sim_time": bool(self.get_parameter("use_sim_time").value),
            "frames_scored": len(scored), "accuracy": accuracy, "errors": errors[:20],
            "per_frame": rows,
        }

    def write_report(self, path: str | Path | None = None) -> dict[str, Any]:
        data = self.summary()
        target = path or self.report_path
        if target:
            report.write_json(target, {"title": "live evaluation", "meta": report.environment(),
                                       "topics": {"input": self.input_topic, "gt": self.gt_topic,
                                                  "disparity": self.disparity_topic}, **data})
        return data


def format_summary(data: dict[str, Any]) -> str:
    acc = data["accuracy"]
    lat = data["latency_ms"]
    parts = [f"frames in {data['inputs_counted']}, out {data['outputs']}, drop rate "
             f"{100 * data['drop_rate']:.1f}%" if data["inputs_counted"] else "no inputs seen"]
    if lat.get("count"):
        parts.append(f"latency median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms")
    if acc:
        parts.append(f"EPE {acc.get('epe', float('nan')):.3f} px, D1-all {100 * acc.get('d1_all', 0):.2f}%, "
                     f"bad-3 {100 * acc.get('bad3', 0):.2f}% over {acc.get('frames', 0)} frames")
    return "; ".join(parts)


def main(args: list[str] | None = None) -> int:
    """Evaluate until ``expected_frames``/``idle_timeout``/``timeout`` or SIGINT/SIGTERM; either
    way the report is written and the summary printed (exit 0)."""
    from rclpy.executors import SingleThreadedExecutor

    from stereo_depth_ros import stopping
    from stereo_depth_ros.dds import configure_dds
    from stereo_depth_ros.ros import spinning

    stopping.install()
    configure_dds("auto")
    spinning.init(args)
    node = None
    executor = SingleThreadedExecutor()
    try:
        if stopping.requested():
            spinning.say("evaluator_node", f"{stopping.reason()} received during start-up: not started")
            return 0
        node = EvaluatorNode()
        executor.add_node(node)
        spinning.spin_until_stopped(executor, node.get_logger(), done=node.finished.is_set)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f"evaluator_node: {exc}", file=sys.stderr)
        return 2
    finally:
        executor.shutdown()
        if node is not None:
            data = node.write_report()
            print(format_summary(data), flush=True)
            if node.report_path:
                print(f"report: {node.report_path}", flush=True)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        stopping.finishing()
    return 0


if __name__ == "__main__":
    sys.exit(main())
