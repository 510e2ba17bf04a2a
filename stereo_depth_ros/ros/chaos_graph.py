"""The chaos run (``stereo-depth chaos``): a recorded bag replayed in a loop, at several rates in
turn, into a real ``stereo-depth run`` process, with a probe watching its outputs and its
/diagnostics (see evaluation/chaos.py for what is checked).

Layouts: ``airsim`` (AirSim's topic names, bgr8, P[3] = 0, the right camera 25 ms late; the graph
runs ``--source airsim``, approximate sync and the source's baseline) and ``synthetic`` (the
synthetic camera's topics with exact stamps and /clock; the graph runs ``--source bag`` with
``use_sim_time``, so the node's clock jumps back at every loop). The bag plays from this process;
the graph is its own process, so the memory measured is the graph's alone. Between two rates the
replay goes silent for ``gap_s`` seconds, in turn on the right camera only (one camera stopped:
the node must say so) and on every topic (the source stopped), and then comes back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Range
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import stopping
from stereo_depth_ros.evaluation import chaos
from stereo_depth_ros.evaluation.soak import MemoryTrace
from stereo_depth_ros.ros.bag_replay import BagReplayer
from stereo_depth_ros.ros.conversions import stamp_ns
from stereo_depth_ros.ros.demo_graph import search_range
from stereo_depth_ros.ros.depth_node import REFUSALS
from stereo_depth_ros.ros.graph import NodeGraph

LAYOUTS = ("airsim", "synthetic")


@dataclass
class ChaosConfig:
    layout: str = "airsim"
    rates: tuple[float, ...] = (1.0, 2.0, 4.0, 0.5)
    seconds_per_rate: float = 10.0
    frames: int = 20               # frames in the bag (one loop)
    width: int = 160
    height: int = 120
    record_rate: float = 10.0      # Hz of the recorded stamps
    max_disparity: float = 24.0
    seed: int = 19
    backend: str = "sgbm"
    nearest: bool = True
    warmup_fraction: float = 0.25  # memory growth is measured from here to the end
    max_growth_mib: float = 16.0
    drain_s: float = 4.0           # after the bag stops: frames in flight come out
    grace_s: float = 15.0          # every node's output goes on within this after each pass starts
    gap_s: float = 4.0             # between rates: the right camera, then the whole source, stops this long
    startup_timeout_s: float = 180.0
    progress_s: float = 30.0


class _Output:
    """Stamps and arrival times of one output topic, in arrival order."""

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        now = time.monotonic()
        with self.lock:
            self.stamps.append(stamp_ns(msg))
            self.times.append(now)

    def snapshot(self) -> tuple[list[int], list[float]]:
        with self.lock:
            return list(self.stamps), list(self.times)


class ChaosProbe(Node):
    """Receives the graph's disparity and nearest distance, keeps the last /diagnostics status of
    each of its nodes, and can publish /clock (a graph on sim time has no timers without it)."""

    def __init__(self, context: Any, ns: str) -> None:
        super().__init__("chaos_probe", context=context)
        self.ns = ns
        qos = QoSProfile(depth=50)
        self.outputs = {"disparity": _Output(), "distance": _Output()}
        self.create_subscription(DisparityImage, f"/{ns}/disparity", self.outputs["disparity"], qos)
        self.create_subscription(Range, f"/{ns}/nearest_object/distance", self.outputs["distance"], qos)
        self.status: dict[str, dict[str, str]] = {}
        self.status_count: dict[str, int] = {}
        self._lock = threading.Lock()
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=20))
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=1))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            for node in ("depth_node", "nearest_object_node"):
                if status.name.startswith(f"/{self.ns}/{node}:"):
                    with self._lock:
                        self.status[node] = {kv.key: kv.value for kv in status.values}
                        self.status_count[node] = self.status_count.get(node, 0) + 1

    def last(self, node: str) -> tuple[dict[str, str] | None, int]:
        with self._lock:
            return self.status.get(node), self.status_count.get(node, 0)

    def publish_clock(self, ns_time: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(ns_time), 1_000_000_000)
        self.clock_pub.publish(msg)


def _record(cfg: ChaosConfig, work_dir: Path, vehicle: str) -> Path:
    from stereo_depth_ros.commands.record import airsim_baseline, record_bag

    path = work_dir / f"{vehicle}_bag"
    if not path.exists():
        record_bag(path, cfg.frames, cfg.width, cfg.height, cfg.record_rate, cfg.seed,
                   max_disparity=cfg.max_disparity, start_ns=1_600_000_000 * 10**9,
                   baseline=airsim_baseline() if cfg.layout == "airsim" else 0.12, layout=cfg.layout,
                   vehicle=vehicle)
    return path


def graph_arguments(cfg: ChaosConfig, ns: str) -> tuple[list[str], str, list[str]]:
    """(``stereo-depth`` arguments of the graph, the replay's topic prefix, the input topics)."""
    if cfg.layout == "airsim":
        base = f"/airsim_node/{ns}"
        inputs = [f"{base}/front_left/Scene", f"{base}/front_left/Scene/camera_info",
                  f"{base}/front_right/Scene", f"{base}/front_right/Scene/camera_info"]
        args, prefix = ["run", "--source", "airsim", "--vehicle", ns, "--namespace", ns], ""
    else:
        inputs = [f"/{ns}/left/image_rect", f"/{ns}/left/camera_info", f"/{ns}/right/image_rect",
                  f"/{ns}/right/camera_info"]
        args, prefix = ["run", "--source", "bag", "--namespace", ns], f"/{ns}"
        for name, topic in zip(("left_image", "left_info", "right_image", "right_info"), inputs, strict=True):
            args += ["--arg", f"{name}:={topic}"]
    args += ["--param", f"backend:={cfg.backend}"]
    if cfg.backend == "sgbm":
        args += ["--param", f"disparity_range:={search_range(cfg.max_disparity)}"]
    if not cfg.nearest:
        args.append("--no-nearest-object")
    return args, prefix, inputs


class _GraphProcess:
    """``stereo-depth ARGS`` as a child process, its output collected as it comes."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "stereo_depth_ros.cli", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._chunks.append(line)

    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT, as Ctrl-C or ros2 launch would; the exit status (None: killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._reader.join(5.0)
            return None
        self._reader.join(5.0)
        return self.proc.returncode


def run_chaos(cfg: ChaosConfig, work_dir: Path, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Record the bag, start the graph, play the bag at each rate for
    ``seconds_per_rate`` seconds, drain, stop the graph with SIGINT; the report dict."""
    if cfg.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {cfg.layout!r}: use {' or '.join(LAYOUTS)}")
    ns = f"chaos_{os.getpid()}_{cfg.layout}"
    bag = _record(cfg, work_dir, vehicle=ns)
    args, prefix, inputs = graph_arguments(cfg, ns)
    started = time.monotonic()
    graph_proc = _GraphProcess(args)
    memory = MemoryTrace(pid=graph_proc.proc.pid)
    died_early = False
    rates_played: list[float] = []
    try:
        with NodeGraph() as graph:
            probe = graph.add(ChaosProbe(graph.context, ns))
            replayer = graph.add(BagReplayer(bag, rate=cfg.rates[0], loop=True, prefix=prefix,
                                             publish_clock=cfg.layout == "synthetic", context=graph.context,
                                             wait_for_subscribers=[t[len(prefix):] for t in inputs],
                                             wait_timeout=cfg.startup_timeout_s, node_name="chaos_replay"))
            replayer.start()
            progress(f"chaos: {cfg.layout} bag of {cfg.frames} frames {cfg.width}x{cfg.height}; waiting for "
                     f"`stereo-depth {' '.join(args)}` to subscribe ...")
            graph.wait_until(lambda: bool(replayer.loop_starts) or graph_proc.proc.poll() is not None,
                             timeout=cfg.startup_timeout_s + 5)
            memory.sample()
            total = cfg.seconds_per_rate * len(cfg.rates)
            play_start = time.monotonic()
            next_progress = play_start + cfg.progress_s
            gaps: list[str] = []
            gap_times: list[tuple[float, float]] = []
            for i, rate in enumerate(cfg.rates):
                if stopping.requested() or graph_proc.proc.poll() is not None:
                    break
                if i and cfg.gap_s > 0:  # a camera stops and comes back
                    right = [t[len(prefix):] for t in inputs[2:]]
                    gaps.append("right camera" if len(gaps) % 2 == 0 else "whole source")
                    replayer.muted = frozenset(right if gaps[-1] == "right camera" else replayer.topics)
                    gap_start = time.monotonic()
                    stopping.sleep(cfg.gap_s)
                    replayer.muted = frozenset()
                    gap_times.append((gap_start, time.monotonic()))
                replayer.rate = rate
                rates_played.append(rate)
                phase_end = time.monotonic() + cfg.seconds_per_rate
                while time.monotonic() < phase_end and not stopping.requested():
                    stopping.sleep(1.0)
                    memory.sample()
                    if time.monotonic() - play_start >= cfg.warmup_fraction * total:
                        memory.mark_warm()
                    if graph_proc.proc.poll() is not None:
                        died_early = True
                        break
                    if time.monotonic() >= next_progress:
                        next_progress += cfg.progress_s
                        out = len(probe.outputs["disparity"].stamps)
                        progress(f"chaos: {time.monotonic() - play_start:.0f} s, rate {rate:g}, "
                                 f"{len(replayer.loop_starts)} loops, {out} disparity out, "
                                 f"RSS {memory.samples[-1][1] / 2**20:.1f} MiB")
            replayer.stop()
            played_end = time.monotonic()
            # drain: what is in flight comes out; /clock goes on for a graph on sim time, so its
            # timers (the /diagnostics) keep running
            clock = replayer.bag.start_ns + replayer.bag.duration_ns + 10**9
            _, seen = probe.last("depth_node")
            drain_end = time.monotonic() + cfg.drain_s
            while time.monotonic() < drain_end or (probe.last("depth_node")[1] <= seen
                                                   and time.monotonic() < drain_end + 10):
                if cfg.layout == "synthetic":
                    clock += 100_000_000
                    probe.publish_clock(clock)
                time.sleep(0.1)
            memory.sample()
            memory.mark_warm()
            depth_status, _ = probe.last("depth_node")
            nearest_status, _ = probe.last("nearest_object_node")
            published = replayer.published_by_topic.get(inputs[0][len(prefix):], 0)
            loop_starts = list(replayer.loop_starts)
            outputs = {name: out.snapshot() for name, out in probe.outputs.items()}
    finally:
        exit_status = graph_proc.stop()
    text = graph_proc.output()
    completed = max(len(loop_starts) - 1, 0)  # the last pass was cut short by the stop
    account = (None if depth_status is None else
               chaos.account_from_status(depth_status, REFUSALS, published, len(outputs["disparity"][0])))
    report: dict[str, Any] = {
        "layout": cfg.layout, "frames_per_loop": cfg.frames, "size": f"{cfg.width}x{cfg.height}",
        "graph_args": args, "backend": cfg.backend, "duration_s": time.monotonic() - started,
        "loops": {"started": len(loop_starts), "completed": completed, "rates": rates_played,
                  "grace_s": cfg.grace_s, "gaps": gaps, "gap_s": cfg.gap_s,
                  "clean": chaos.clean_passes(loop_starts, gap_times),
                  "disparity_per_loop": chaos.per_loop(loop_starts, outputs["disparity"][1], played_end)},
        "outputs": {name: {"count": len(stamps), "epochs": chaos.epochs(stamps),
                           "silent_after_loops": chaos.silent_after(loop_starts, times, cfg.grace_s,
                                                                    played_end, gap_times)}
                    for name, (stamps, times) in outputs.items() if name == "disparity" or cfg.nearest},
        "depth": None if account is None else account.as_dict(),
        "depth_counters": depth_status or {}, "nearest_counters": nearest_status or {},
        "memory": memory.summary(), "memory_samples": memory.samples,
        "graph_process": {"exit_status": exit_status, "died_early": died_early,
                          "tracebacks": [m for m in chaos.TRACEBACK_MARKERS if m in text],
                          "output_tail": text.splitlines()[-30:]},
        "stopped_by": stopping.reason(),
    }
    report["failures"] = chaos.failures(report, cfg.max_growth_mib)
    report["ok"] = not report["failures"]
    return report
