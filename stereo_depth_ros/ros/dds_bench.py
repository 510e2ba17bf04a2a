"""Large messages across processes over DDS (``stereo-depth dds-bench``).

Stage ``node``: this process publishes ``frames`` synchronized stereo sets (left/right
``image_rect`` rgb8 + camera_info, as a camera driver does) at ``rate`` Hz to a ``depth_node``
started as a separate process with its default (best-effort) input QoS, and subscribes to the
node's ``disparity``, ``depth`` and ``points2``. The pairs delivered are the node's own
synchronized sets, read from its /diagnostics; the outputs delivered are counted here by stamp
against the frames the node processed.

Stage ``inputs``: the same sets to a plain subscriber process with the depth node's default
input QoS (sensor data, best effort) and nothing else to do: what the transport delivers when
the receiving process has the CPU for it.

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
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    stages: tuple[str, ...] = ("inputs", "node", "outputs")
    discovery_timeout: float = 120.0
    # a writer can see a reader before that reader has matched the writer (best effort drops
    # what comes from a writer it does not know yet): a pause after matching, on a loaded CPU
    discovery_settle_s: float = 2.0
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

    def complete(self) -> int:
        """Frames seen on every topic."""
        with self._lock:
            return len(set.intersection(*self.seen.values())) if self.seen else 0


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
    with tempfile.TemporaryFile("w+") as log, NodeGraph(single_threaded=True) as graph:
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
            time.sleep(cfg.discovery_settle_s)

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


# ---- stage "inputs" -----------------------------------------------------------------------------

def _sink_inputs(args: argparse.Namespace) -> int:
    """Child process of the ``inputs`` stage: spin in the main thread, as a node executable does,
    counting what arrives until ``idle`` seconds pass without input."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data

    counter = _Counter()
    rclpy.init()
    node = Node("dds_bench_inputs", namespace=args.namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        subs = [node.create_subscription(t, name, counter.callback(name), qos_profile_sensor_data)
                for name, t in INPUTS]
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not all(sub.get_publisher_count() > 0 for sub in subs):
            executor.spin_once(timeout_sec=0.1)
        if args.ready_file:
            Path(args.ready_file).write_text("ready\n")
        last, since = counter.counts(), time.monotonic()
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            now = counter.counts()
            if now != last:
                last, since = now, time.monotonic()
            elif any(now.values()) and time.monotonic() - since >= args.idle:
                break
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    counts = " ".join(str(n) for n in counter.counts().values())  # in INPUTS order
    print(f"received {counts} sets {counter.complete()}", flush=True)
    return 0


def run_inputs_stage(cfg: DdsBenchConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    namespace = f"/dds_bench_in_{os.getpid()}"
    msgs = stereo_set(cfg.width, cfg.height)
    ready = Path(tempfile.mkdtemp(prefix="dds_bench_")) / "ready"
    cmd = [sys.executable, "-m", "stereo_depth_ros.ros.dds_bench", "sink", "--namespace", namespace,
           "--ready-file", str(ready)]
    with tempfile.TemporaryFile("w+") as out, NodeGraph(single_threaded=True) as graph:
        sink = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            harness = graph.add(Node("dds_bench_pub", namespace=namespace, context=graph.context))
            pub_qos = qos(cfg.publisher_reliability, 10)
            pubs = [harness.create_publisher(t, name, pub_qos) for name, t in INPUTS]
            def matched() -> bool:
                return ready.is_file() and all(p.get_subscription_count() > 0 for p in pubs)
            if not graph.wait_until(matched, cfg.discovery_timeout):
                raise RuntimeError(f"the subscriber process did not appear in {cfg.discovery_timeout:.0f} s")
            time.sleep(cfg.discovery_settle_s)

            def publish(i: int) -> None:
                _restamp(msgs, i)
                for pub, msg in zip(pubs, msgs, strict=True):
                    pub.publish(msg)
            progress(f"publishing {cfg.frames} stereo sets to a plain subscriber process ...")
            sent = _pace(cfg.frames, cfg.rate, publish)
            sink.wait(timeout=cfg.discovery_timeout + 60)
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait()
            shutil.rmtree(ready.parent, ignore_errors=True)
        out.seek(0)
        text = out.read()
    words = text.split()
    if sink.returncode != 0 or "received" not in words:
        raise RuntimeError(f"the subscriber process failed (exit status {sink.returncode}):\n{text[-3000:]}")
    at = words.index("received")
    counts = [int(w) for w in words[at + 1:at + 1 + len(INPUTS)]]
    return {**sent, "pairs_delivered": int(words[at + len(INPUTS) + 2]),
            "received": {name: n for (name, _), n in zip(INPUTS, counts, strict=True)}}


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


def _publish_outputs(args: argparse.Namespace) -> int:
    """Child process of the ``outputs`` stage: publish, then linger so reliable delivery finishes."""
    import rclpy
    from rclpy.context import Context

    msgs = output_messages(args.width, args.height)
    context = Context()
    rclpy.init(context=context)
    node = Node("dds_bench_outputs", namespace=args.namespace, context=context)
    try:  # publishing needs no executor: none spins, so none competes with publish() for the GIL
        pubs = [node.create_publisher(t, name, qos(args.reliability, args.depth)) for name, t in OUTPUTS]
        deadline = time.monotonic() + 120.0
        while not all(p.get_subscription_count() > 0 for p in pubs):
            if time.monotonic() > deadline:
                print("dds_bench outputs: no subscriber appeared in 120 s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        time.sleep(args.settle)

        def publish(i: int) -> None:
            _restamp(msgs, i)
            for pub, msg in zip(pubs, msgs, strict=True):
                pub.publish(msg)
        sent = _pace(args.frames, args.rate, publish)
        time.sleep(args.linger)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    print(f"published {sent['published']} {sent['seconds']:.3f} {sent['achieved_hz']:.3f} {sent['late']}",
          flush=True)
    return 0


def run_outputs_stage(cfg: DdsBenchConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    """This process subscribes, spinning in its main thread; a child process publishes."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    namespace = f"/dds_bench_out_{os.getpid()}"
    context = Context()
    rclpy.init(context=context)
    sink = Node("dds_bench_sink", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sink)
    outputs = _Counter()
    cmd = [sys.executable, "-m", "stereo_depth_ros.ros.dds_bench", "outputs", "--namespace", namespace,
           "--width", str(cfg.width), "--height", str(cfg.height), "--rate", str(cfg.rate),
           "--frames", str(cfg.frames), "--settle", str(cfg.discovery_settle_s)]
    try:
        for name, t in OUTPUTS:
            sink.create_subscription(t, name, outputs.callback(name), qos(cfg.subscriber_reliability, 10))
        progress(f"a publisher process sends {cfg.frames} x (disparity, depth, points2) "
                 f"at {cfg.rate:g} Hz ...")
        with tempfile.TemporaryFile("w+") as out:
            child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                deadline = time.monotonic() + cfg.discovery_timeout + 600
                while child.poll() is None and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.1)
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.1)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            out.seek(0)
            text = out.read()
    finally:
        executor.shutdown()
        sink.destroy_node()
        rclpy.try_shutdown(context=context)
    line = next((ln for ln in text.splitlines() if ln.startswith("published")), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"the output publisher failed (exit status {child.returncode}):\n{text[-3000:]}")
    _, frames, seconds, hz, late = line.split()
    counts = outputs.counts()
    return {"published": int(frames), "seconds": float(seconds), "achieved_hz": float(hz), "late": int(late),
            "outputs": {name: {"received": counts.get(name, 0), "of": int(frames)} for name, _ in OUTPUTS}}


def run_dds_bench(cfg: DdsBenchConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Figures of each stage in ``cfg.stages`` (see the module docstring)."""
    report: dict[str, Any] = {"config": dict(cfg.__dict__),
                              "profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")}
    if "inputs" in cfg.stages:
        report["inputs"] = run_inputs_stage(cfg, progress)
    if "node" in cfg.stages:
        report["node"] = run_node_stage(cfg, progress)
    if "outputs" in cfg.stages:
        report["outputs"] = run_outputs_stage(cfg, progress)
    return report


def _child(argv: list[str]) -> int:
    """``python -m stereo_depth_ros.ros.dds_bench outputs|sink ...``: the stages' other process."""
    parser = argparse.ArgumentParser(prog="python -m stereo_depth_ros.ros.dds_bench")
    parser.add_argument("role", choices=("outputs", "sink"))
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--width", type=int, default=0)
    parser.add_argument("--height", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--frames", type=int, default=0)
    parser.add_argument("--reliability", default="reliable")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--linger", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=2.0, help="outputs: seconds after matching")
    parser.add_argument("--ready-file", default="", help="sink: written once every input is matched")
    parser.add_argument("--idle", type=float, default=3.0, help="sink: seconds without input that end it")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    return _publish_outputs(args) if args.role == "outputs" else _sink_inputs(args)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
