"""Large messages across processes over DDS (``stereo-depth dds-bench``).

Stage ``node``: this process publishes ``frames`` synchronized stereo sets (left/right
``image_rect`` rgb8 + camera_info, as a camera driver does) at ``rate`` Hz to a ``depth_node``
started as a separate process with its default (best-effort) input QoS, and subscribes to the
node's ``disparity``, ``depth`` and ``points2``. The pairs delivered are the node's own
synchronized sets, read from its /diagnostics; the outputs delivered are counted here by stamp
against the frames the node processed.

Stage ``outputs``: a child process (``python -m stereo_depth_ros.ros.dds_bench``) publishes
``disparity``, ``depth`` and ``points2`` of the same size at ``rate`` Hz with the depth node's
output QoS, and this process counts what arrives: the node's own output rate is bounded by its
processing speed, this stage is not.

The caller applies the DDS policy (stereo_depth_ros.dds.configure_dds) first; child processes
inherit it through the environment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros.ros.graph import NodeGraph

INPUTS = (("left/image_rect", Image), ("left/camera_info", CameraInfo),
          ("right/image_rect", Image), ("right/camera_info", CameraInfo))
OUTPUTS = (("disparity", DisparityImage), ("depth", Image), ("points2", PointCloud2))
_BASE_NS = 1_700_000_000 * 10**9  # stamps: increasing, far from zero


@dataclass
class DdsBenchConfig:
    width: int = 1280
    height: int = 720
    rate: float = 30.0
    frames: int = 300
    publisher_reliability: str = "reliable"   # the camera driver's side (most drivers: reliable)
    subscriber_reliability: str = "reliable"  # the consumer of the outputs (RViz, a recorder)
    input_reliability: str = "best_effort"    # the depth node's input QoS (its default)
    backend: str = "sgbm"
    stages: tuple[str, ...] = ("node", "outputs")
    discovery_timeout: float = 120.0
    settle_s: float = 3.0


def qos(reliability: str, depth: int) -> QoSProfile:
    if reliability == "best_effort":
        profile = QoSProfile(depth=depth)
        profile.reliability = ReliabilityPolicy.BEST_EFFORT
        return profile
    if reliability != "reliable":
        raise ValueError(f"reliability must be reliable or best_effort, got {reliability!r}")
    return QoSProfile(depth=depth)


def _header(index: int, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(_BASE_NS + index * 10_000_000, 10**9)
    return header


def _stamp_index(msg: Any) -> int:
    return (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec - _BASE_NS) // 10_000_000


class _Counter:
    """Distinct frame indices seen per topic (thread-safe)."""

    def __init__(self) -> None:
        self.seen: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def callback(self, topic: str) -> Callable[[Any], None]:
        self.seen[topic] = set()

        def on_message(msg: Any) -> None:
            with self._lock:
                self.seen[topic].add(_stamp_index(msg))
        return on_message

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {topic: len(s) for topic, s in self.seen.items()}


def _pace(frames: int, rate: float, publish: Callable[[int], None]) -> dict[str, float]:
    """Call ``publish(i)`` for each frame at ``rate`` Hz; the achieved rate and late frames."""
    period, late = 1.0 / rate, 0
    start = time.monotonic()
    for i in range(frames):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            late += 1
        publish(i)
    elapsed = time.monotonic() - start
    return {"published": frames, "seconds": elapsed, "achieved_hz": frames / elapsed if elapsed > 0 else 0.0,
            "late": late}


def _wait_settled(values: Callable[[], Any], settle_s: float, timeout: float) -> Any:
    """Poll ``values()`` until it has not changed for ``settle_s`` seconds (at most ``timeout``)."""
    last, since = values(), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = values()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            break
    return last


def stereo_set(width: int, height: int) -> tuple[Any, ...]:
    """One rendered synthetic frame as (left, left_info, right, right_info) messages."""
    from stereo_depth_ros.evaluation.bench import make_frame
    from stereo_depth_ros.ros import conversions as conv
    from stereo_depth_ros.ros._cv_bridge import CvBridge

    sample = make_frame(width, height)
    geom, bridge, header = sample.rig.geometry(), CvBridge(), _header(0, "bench_left_optical")
    return (bridge.cv2_to_imgmsg(sample.left, "rgb8", header), conv.camera_info_from_geometry(geom, header),
            bridge.cv2_to_imgmsg(sample.right, "rgb8", header),
            conv.camera_info_from_geometry(geom, header, right=True))


def _restamp(msgs: tuple[Any, ...], index: int) -> None:
    stamp = _header(index, "").stamp
    for msg in msgs:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp.sec, stamp.nanosec


# ---- stage "node" -------------------------------------------------------------------------------

def _diagnostic_values(msg: DiagnosticArray, prefix: str) -> dict[str, str] | None:
    for status in msg.status:
        if status.name.startswith(prefix):
            return {kv.key: kv.value for kv in status.values}
    return None


def _start_node(namespace: str, cfg: DdsBenchConfig, log: Any) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stereo_depth_ros.ros.depth_node", "--ros-args",
           "-r", f"__ns:={namespace}", "-p", f"backend:={cfg.backend}", "-p", "diagnostics_period:=0.5",
           "-p", f"input_reliability:={cfg.input_reliability}", "-p", "stall_timeout:=3600.0"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def run_node_stage(cfg: DdsBenchConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    namespace = f"/dds_bench_{os.getpid()}"
    msgs = stereo_set(cfg.width, cfg.height)
    with tempfile.TemporaryFile("w+") as log, NodeGraph() as graph:
        node = _start_node(namespace, cfg, log)
        try:
            harness = graph.add(Node("dds_bench", namespace=namespace, context=graph.context))
            pub_qos, sub_qos = qos(cfg.publisher_reliability, 10), qos(cfg.subscriber_reliability, 10)
            pubs = [harness.create_publisher(t, name, pub_qos) for name, t in INPUTS]
            outputs = _Counter()
            for name, t in OUTPUTS:
                harness.create_subscription(t, name, outputs.callback(name), sub_qos)
            latest: dict[str, dict[str, str]] = {}

            def on_diagnostics(msg: DiagnosticArray) -> None:
                values = _diagnostic_values(msg, f"{namespace}/depth_node:")
                if values is not None:
                    latest["values"] = values
            harness.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)

            progress(f"waiting for the depth node (process {node.pid}) ...")
            ready = graph.wait_until(lambda: node.poll() is None and "values" in latest and all(
                p.get_subscription_count() > 0 for p in pubs) and all(
                harness.count_publishers(f"{namespace}/{n}") > 0 for n, _ in OUTPUTS), cfg.discovery_timeout)
            if not ready:
                log.seek(0)
                raise RuntimeError(f"the depth node did not come up in {cfg.discovery_timeout:.0f} s "
                                   f"(exit status {node.poll()}); its output:\n{log.read()[-3000:]}")

            def publish(i: int) -> None:
                _restamp(msgs, i)
                for pub, msg in zip(pubs, msgs, strict=True):
                    pub.publish(msg)
            progress(f"publishing {cfg.frames} stereo sets {cfg.width}x{cfg.height} rgb8 "
                     f"at {cfg.rate:g} Hz ...")
            sent = _pace(cfg.frames, cfg.rate, publish)

            def snapshot() -> tuple:
                v = latest["values"]
                counts = tuple(sorted(outputs.counts().items()))
                return v.get("synchronized_sets"), v.get("processed"), counts
            _wait_settled(snapshot, cfg.settle_s, timeout=120.0)
            values = dict(latest["values"])
        finally:
            if node.poll() is None:
                node.send_signal(2)
                try:
                    node.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    node.kill()
                    node.wait()
    processed = int(values.get("processed", 0))
    return {
        **sent,
        "pairs_delivered": int(values.get("synchronized_sets", 0)),
        "received": {name: int(values.get(f"received {name}", 0)) for name, _ in INPUTS},
        "unsynchronized": int(values.get("unsynchronized", 0)),
        "processed": processed,
        "dropped_busy": int(values.get("dropped_busy", 0)),
        "outputs": {name: {"received": n, "of": processed} for name, n in outputs.counts().items()},
    }


# ---- stage "outputs" ----------------------------------------------------------------------------

def output_messages(width: int, height: int) -> tuple[Any, ...]:
    """disparity, depth and points2 messages the size the depth node publishes for this image."""
    import numpy as np

    from stereo_depth_ros.evaluation.bench import make_frame
    from stereo_depth_ros.geometry import reproject
    from stereo_depth_ros.pointcloud import build_cloud
    from stereo_depth_ros.ros import conversions as conv

    sample = make_frame(width, height)
    geom = sample.rig.geometry()
    disparity = sample.disparity.astype(np.float32)
    header = _header(0, "bench_left_optical")
    msg = DisparityImage(header=header, image=conv.depth_msg(disparity, header), f=float(geom.fx),
                         t=float(geom.baseline), min_disparity=0.0, max_disparity=float(disparity.max()),
                         delta_d=1.0 / 16.0)
    cloud = conv.cloud_msg(build_cloud(reproject(disparity, geom), sample.left), header)
    return msg, conv.depth_msg(sample.depth, header), cloud


def _publish_outputs(argv: list[str]) -> int:
    """Child process of the ``outputs`` stage: publish, then linger so reliable delivery finishes."""
    parser = argparse.ArgumentParser(prog="python -m stereo_depth_ros.ros.dds_bench")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--reliability", default="reliable")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--linger", type=float, default=3.0)
    args = parser.parse_args(argv)
    msgs = output_messages(args.width, args.height)
    with NodeGraph() as graph:
        node = graph.add(Node("dds_bench_outputs", namespace=args.namespace, context=graph.context))
        pubs = [node.create_publisher(t, name, qos(args.reliability, args.depth)) for name, t in OUTPUTS]
        if not graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 120.0):
            print("dds_bench outputs: no subscriber appeared in 120 s", file=sys.stderr)
            return 1

        def publish(i: int) -> None:
            _restamp(msgs, i)
            for pub, msg in zip(pubs, msgs, strict=True):
                pub.publish(msg)
        sent = _pace(args.frames, args.rate, publish)
        time.sleep(args.linger)
    print(f"published {sent['published']} {sent['seconds']:.3f} {sent['achieved_hz']:.3f} {sent['late']}",
          flush=True)
    return 0


def run_outputs_stage(cfg: DdsBenchConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    namespace = f"/dds_bench_out_{os.getpid()}"
    with NodeGraph() as graph:
        harness = graph.add(Node("dds_bench_sink", namespace=namespace, context=graph.context))
        outputs = _Counter()
        for name, t in OUTPUTS:
            harness.create_subscription(t, name, outputs.callback(name), qos(cfg.subscriber_reliability, 10))
        cmd = [sys.executable, "-m", "stereo_depth_ros.ros.dds_bench", "--namespace", namespace,
               "--width", str(cfg.width), "--height", str(cfg.height), "--rate", str(cfg.rate),
               "--frames", str(cfg.frames)]
        progress(f"a publisher process sends {cfg.frames} x (disparity, depth, points2) "
                 f"at {cfg.rate:g} Hz ...")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.discovery_timeout + 600)
        if proc.returncode != 0 or not proc.stdout.startswith("published"):
            raise RuntimeError(f"the output publisher failed (exit status {proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-3000:]}")
        _, frames, seconds, hz, late = proc.stdout.split()
        counts = _wait_settled(outputs.counts, 1.0, timeout=30.0)
    return {"published": int(frames), "seconds": float(seconds), "achieved_hz": float(hz), "late": int(late),
            "outputs": {name: {"received": counts.get(name, 0), "of": int(frames)} for name, _ in OUTPUTS}}


def run_dds_bench(cfg: DdsBenchConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Figures of each stage in ``cfg.stages`` (see the module docstring)."""
    report: dict[str, Any] = {"config": dict(cfg.__dict__),
                              "profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")}
    if "node" in cfg.stages:
        report["node"] = run_node_stage(cfg, progress)
    if "outputs" in cfg.stages:
        report["outputs"] = run_outputs_stage(cfg, progress)
    return report


if __name__ == "__main__":
    sys.exit(_publish_outputs(sys.argv[1:]))
