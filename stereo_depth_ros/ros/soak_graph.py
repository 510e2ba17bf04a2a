"""The soak run's node graph in one process: synthetic camera -> depth node -> nearest-object
node, plus a probe that receives the outputs and measures stamp-to-receipt latency.

``run_soak(SoakConfig(...))`` returns the report dict (see evaluation/soak.py for the frame
account). The caller must have applied the DDS policy (configure_dds) first.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Range
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import stopping
from stereo_depth_ros.evaluation.soak import FrameAccount, MemoryTrace, percentiles
from stereo_depth_ros.ros.conversions import stamp_ns
from stereo_depth_ros.ros.depth_node import REFUSALS, DepthNode
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.ros.spinning import stop_message
from stereo_depth_ros.ros.synthetic_camera import SyntheticCamera

NEAREST_REFUSALS = ("dropped_busy", "size_mismatch", "invalid_disparity", "bad_image", "bad_camera_info",
                    "error", "zero_stamp", "future_stamp", "duplicate_stamp", "out_of_order")


@dataclass
class SoakConfig:
    frames: int = 1000
    rate: float = 30.0
    width: int = 320
    height: int = 240
    backend: str = "sgbm"
    model: str = ""
    nearest: bool = True
    loop_frames: int = 30          # distinct frames rendered up front and replayed in a loop
    max_disparity: float = 48.0    # of the synthetic scene, px
    warmup_fraction: float = 0.1   # memory growth is measured from here to the end
    drain_s: float = 5.0           # wait for frames in flight after the last one is sent
    timeout_s: float = 0.0         # 0: 2 x frames / rate + 120 s
    progress_s: float = 30.0
    seed: int = 0
    namespace: str = ""            # "" = soak_<pid>: other graphs on this ROS domain cannot cross in


class _LimitedCamera(SyntheticCamera):
    """The synthetic camera, silent after ``limit`` frames."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        self.limit = limit
        self.first_sent: float | None = None
        self.last_sent: float | None = None
        super().__init__(**kwargs)

    def _tick(self) -> None:
        if self.published < self.limit:
            super()._tick()
            self.last_sent = time.monotonic()
            if self.first_sent is None:
                self.first_sent = self.last_sent

    def sent_rate(self) -> float:
        """Frames per second the camera actually achieved (its timer slips on a loaded machine)."""
        if self.first_sent is None or self.last_sent is None or self.published < 2:
            return 0.0
        return (self.published - 1) / max(self.last_sent - self.first_sent, 1e-9)


class _Probe(Node):
    """Receives disparity (and the nearest object's distance); latency = receipt - input stamp.

    Its records live in arrays sized for the whole run up front, so the probe's own memory does
    not grow during the soak and the RSS growth measured is the node graph's."""

    def __init__(self, context: Any, namespace: str, capacity: int) -> None:
        super().__init__("soak_probe", context=context, namespace=namespace)
        self.lock = threading.Lock()
        self.latency = {name: np.full(capacity, np.nan) for name in ("disparity", "distance")}
        self.received = {"disparity": 0, "distance": 0}
        self.duplicates = {"disparity": 0, "distance": 0}
        self._recent: dict[str, deque[int]] = {n: deque(maxlen=64) for n in self.received}
        qos = QoSProfile(depth=10)
        self.create_subscription(DisparityImage, "disparity", self._store("disparity"), qos)
        self.create_subscription(Range, "nearest_object/distance", self._store("distance"), qos)

    def _store(self, name: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            now = time.time_ns()
            stamp = stamp_ns(msg)
            with self.lock:
                if stamp in self._recent[name]:  # one output per input stamp, or it is counted
                    self.duplicates[name] += 1
                    return
                self._recent[name].append(stamp)
                n = self.received[name]
                if n < len(self.latency[name]):
                    self.latency[name][n] = (now - stamp) / 1e6
                self.received[name] = n + 1
        return callback

    def count(self, name: str) -> int:
        with self.lock:
            return self.received[name]

    def latencies_ms(self, name: str) -> list[float]:
        with self.lock:
            values = self.latency[name][: self.received[name]]
            return values[np.isfinite(values)].tolist()


def _depth_parameters(cfg: SoakConfig) -> list[Parameter]:
    span = max(32, int(math.ceil((cfg.max_disparity + 1) / 16.0)) * 16)
    return [Parameter("backend", value=cfg.backend), Parameter("model", value=cfg.model),
            Parameter("disparity_range", value=span), Parameter("lazy_outputs", value=False),
            Parameter("queue_size", value=5)]


def _nearest_node(context: Any, namespace: str) -> tuple[Any | None, str]:
    """The nearest-object node (U-Net, else the threshold baseline when no weights ship)."""
    try:
        from stereo_depth_ros.ros.nearest_object_node import NearestObjectNode
    except ImportError as exc:
        return None, f"nearest-object node not importable: {exc}"
    try:
        return NearestObjectNode(context=context, namespace=namespace), ""
    except Exception as exc:  # no shipped U-Net weights: the classical baseline still runs
        node = NearestObjectNode(context=context, namespace=namespace,
                                 parameter_overrides=[Parameter("backend", value="threshold")])
        return node, f"U-Net unavailable ({str(exc).splitlines()[0][:120]}): threshold backend"


def run_soak(cfg: SoakConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
    exceptions: list[str] = []
    old_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        exceptions.append("".join(traceback.format_exception_only(args.exc_type, args.exc_value)).strip())
        old_hook(args)

    threading.excepthook = hook
    memory = MemoryTrace()
    memory.sample()
    started = time.monotonic()
    # the camera's timer slips on a loaded machine: allow it half the rate before giving up
    timeout = cfg.timeout_s or 2.0 * cfg.frames / cfg.rate + 120.0
    ns = cfg.namespace or f"soak_{os.getpid()}"
    try:
        with NodeGraph() as graph:
            probe = graph.add(_Probe(graph.context, ns, cfg.frames))
            depth = graph.add(DepthNode(context=graph.context, namespace=ns,
                                        parameter_overrides=_depth_parameters(cfg)))
            nearest, nearest_note = (None, "disabled")
            if cfg.nearest:
                nearest, nearest_note = _nearest_node(graph.context, ns)
                if nearest is not None:
                    graph.add(nearest)
            if nearest_note and cfg.nearest:
                progress(f"soak: {nearest_note}")
            camera = graph.add(_LimitedCamera(cfg.frames, context=graph.context, namespace=ns,
                                              parameter_overrides=[
                Parameter("width", value=cfg.width), Parameter("height", value=cfg.height),
                Parameter("rate", value=float(cfg.rate)), Parameter("seed", value=cfg.seed),
                Parameter("max_disparity", value=float(cfg.max_disparity)),
                Parameter("loop_frames", value=max(1, min(cfg.loop_frames, cfg.frames))),
                Parameter("wait_for_prerender", value=True)]))
            progress(f"soak: {cfg.frames} frames at {cfg.rate:g} Hz, {cfg.width}x{cfg.height}, backend "
                     f"{depth.backend.name} on {depth.backend.device}; rendering {camera.loop_frames} frames")
            deadline = started + timeout
            warm_at = max(1, int(cfg.frames * cfg.warmup_fraction))
            next_progress = time.monotonic() + cfg.progress_s
            while camera.published < cfg.frames and time.monotonic() < deadline and not exceptions:
                if stopping.sleep(1.0):
                    camera.limit = camera.published  # the camera stops too; the rest drains
                    progress(f"soak: {stop_message()} after {camera.published} frames")
                    break
                memory.sample()
                if camera.published >= warm_at:
                    memory.mark_warm()
                if time.monotonic() >= next_progress:
                    next_progress += cfg.progress_s
                    c = depth.counters
                    progress(f"soak: {camera.published}/{cfg.frames} sent, {probe.count('disparity')} out, "
                             f"dropped_busy {c['dropped_busy']}, RSS {memory.samples[-1][1] / 2**20:.1f} MiB")
            # drain: the frames still in flight come out (or are counted where they stay)
            graph.wait_until(lambda: depth.status_summary()["in_flight"] == 0
                             and probe.count("disparity") >= depth.counters["processed"], timeout=cfg.drain_s,
                             stoppable=False)
            if nearest is not None:
                graph.wait_until(lambda: _nearest_handled(nearest) >= depth.counters["processed"]
                                 and probe.count("distance") >= nearest.counters["processed"],
                                 timeout=cfg.drain_s, stoppable=False)
            graph.wait_until(lambda: False, timeout=min(cfg.drain_s, 0.5), stoppable=False)
            memory.sample()
            memory.mark_warm()
            report = _report(cfg, camera, depth, nearest, nearest_note, probe, memory, exceptions)
    finally:
        threading.excepthook = old_hook
    report["duration_s"] = time.monotonic() - started
    return report


def _nearest_handled(nearest: Any) -> int:
    c = nearest.counters
    return c["processed"] + sum(c[k] for k in NEAREST_REFUSALS)


def _report(cfg: SoakConfig, camera: Any, depth: DepthNode, nearest: Any, nearest_note: str,
            probe: _Probe, memory: MemoryTrace, exceptions: list[str]) -> dict[str, Any]:
    summary = depth.status_summary()
    c = summary["counters"]
    monitor = depth.monitor
    account = FrameAccount(
        published=camera.published, received=monitor.received[0], unsynchronized=monitor.unmatched[0],
        waiting=monitor.in_flight()[0], sets=monitor.sets, processed=c["processed"],
        refused={k: c[k] for k in REFUSALS if c[k]}, in_worker=summary["in_flight"] - monitor.in_flight()[0],
        out=probe.count("disparity"))
    failures = []
    if exceptions:
        failures.append(f"{len(exceptions)} exception(s)")
    if c["backend_error"]:
        failures.append(f"{c['backend_error']} backend error(s) (unexpected exceptions in processing)")
    if account.unaccounted:
        failures.append(f"{account.unaccounted} frame(s) unaccounted for")
    if camera.published < cfg.frames and not stopping.requested():
        failures.append(f"the camera sent only {camera.published} of {cfg.frames} frames in time")
    if account.out == 0 and not stopping.requested():
        failures.append("no output at all")
    if probe.duplicates["disparity"]:
        failures.append(f"{probe.duplicates['disparity']} duplicate output(s) for one input stamp")
    report: dict[str, Any] = {
        "frames_requested": cfg.frames, "rate_hz": cfg.rate, "width": cfg.width, "height": cfg.height,
        "backend": f"{depth.backend.name}@{depth.backend.device}", "camera_late_ticks": camera.late_ticks,
        "sent_rate_hz": camera.sent_rate(),
        "depth": account.as_dict(), "depth_counters": c,
        "latency_ms": percentiles(probe.latencies_ms("disparity")),
        "duplicate_outputs": dict(probe.duplicates),
        "stage_mean_ms": {k: v * 1000 for k, v in summary["mean_timings"].items()},
        "memory": memory.summary(), "memory_samples": memory.samples,
        "exceptions": exceptions, "failures": failures, "ok": not failures,
        "stopped_by": stopping.reason(),
    }
    if nearest is not None:
        ns = nearest.status_summary()
        nc = ns["counters"]
        refused = {k: nc[k] for k in NEAREST_REFUSALS if nc[k]}
        handled = _nearest_handled(nearest)
        drops = dict(refused)
        if account.processed - handled:
            drops["not paired, lost or in flight (residual)"] = account.processed - handled
        report["nearest"] = {"backend": ns["backend"], "note": nearest_note, "in": account.processed,
                             "processed": nc["processed"], "found": nc["found"],
                             "out": probe.count("distance"), "drops": drops}
        report["nearest_latency_ms"] = percentiles(probe.latencies_ms("distance"))
        if nc["error"]:
            failures.append(f"nearest-object node: {nc['error']} unexpected error(s)")
            report["ok"] = False
    return report
