"""The demo's graph over real ROS 2 (``stereo-depth demo``): the synthetic camera -> the depth
node -> a collector that keeps every output and the camera's ground truth by stamp.

The camera renders all its frames before the depth node exists and only then publishes them, in
a loop, at its rate: the node is timed with nothing rendering beside it. The depth node used here
records each frame's stage times, so the demo reports per-frame figures (medians), not means
that a slow first frame would skew.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import stopping
from stereo_depth_ros.backends import default_backend_name
from stereo_depth_ros.ros.conversions import stamp_ns
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.ros.synthetic_camera import SyntheticCamera


class Collector(Node):
    """Keeps every output and ground-truth message by stamp."""

    TOPICS = (("disparity", DisparityImage), ("depth", Image), ("points2", PointCloud2),
              ("left/image_rect", Image), ("ground_truth/disparity", Image),
              ("ground_truth/depth", Image))

    def __init__(self, context: Any) -> None:
        super().__init__("demo_collector", context=context)
        self.got: dict[str, dict[int, Any]] = {name: {} for name, _ in self.TOPICS}
        self.first_output: dict[int, float] = {}
        for name, msg_type in self.TOPICS:
            self.create_subscription(msg_type, name, self._store(name), QoSProfile(depth=50))

    def _store(self, name: str):
        def callback(msg: Any) -> None:
            stamp = stamp_ns(msg)
            self.got[name][stamp] = msg
            if name == "points2":
                self.first_output.setdefault(stamp, time.monotonic())
        return callback

    def complete(self) -> list[int]:
        """Stamps for which every topic has arrived, oldest first."""
        names = [n for n, _ in self.TOPICS]
        return sorted(set.intersection(*(set(self.got[n]) for n in names)))


class TimedDepthNode(DepthNode):
    """The depth node, keeping each processed frame's stage times (seconds) by input stamp."""

    def __init__(self, **kwargs: Any) -> None:
        self.frame_timings: dict[int, dict[str, float]] = {}
        self._timing_lock = threading.Lock()
        super().__init__(**kwargs)

    def process_pair(self, left: Any, *rest: Any, **kwargs: Any) -> bool:
        done = super().process_pair(left, *rest, **kwargs)
        if done:
            with self._timing_lock:
                self.frame_timings[stamp_ns(left)] = dict(self.last_timings)
        return done


@dataclass
class DemoSettings:
    frames: int
    width: int
    height: int
    backend: str
    model: str
    device: str
    max_disparity: float
    rate: float
    seed: int


@dataclass
class DemoRun:
    """What came back: the collector's messages, the stamps complete on every topic, the node's
    status summary, per-frame stage times, the camera's disparity offset (cx_l - cx_r), how long
    rendering took and whether a stop request (SIGINT/SIGTERM) cut the run short."""

    collector: Collector
    stamps: list[int]
    backend_name: str
    backend_device: str
    status: dict[str, Any]
    published: int
    doffs: float
    render_s: float = 0.0
    frame_timings: dict[int, dict[str, float]] = field(default_factory=dict)
    stopped: bool = False


def search_range(max_disparity: float) -> int:
    """SGBM's disparity_range for a scene whose disparities reach ``max_disparity``: the next
    multiple of 16 above it (stereo_image_proc's constraint), at least 32."""
    return max(32, int(math.ceil((max_disparity + 1) / 16.0)) * 16)


def depth_parameters(settings: DemoSettings) -> list[Parameter]:
    backend = default_backend_name() if settings.backend == "default" else settings.backend
    params = [Parameter("backend", value=settings.backend), Parameter("model", value=settings.model),
              Parameter("device", value=settings.device), Parameter("queue_size", value=10),
              Parameter("lazy_outputs", value=False)]
    # search the whole range the scene can hold, and no more, whichever backend
    if backend == "sgbm":
        params.append(Parameter("disparity_range", value=search_range(settings.max_disparity)))
    else:
        params.append(Parameter("max_disparity", value=float(search_range(settings.max_disparity))))
    return params


def run_demo_graph(settings: DemoSettings, timeout: float, announce: Any = print) -> DemoRun:
    """Render the frames, then run the graph until ``settings.frames`` frames are complete,
    ``timeout`` seconds pass or a stop is requested. Raises BackendError when the depth node's
    backend cannot start."""
    deadline = time.monotonic() + timeout
    with NodeGraph() as graph:
        collector = graph.add(Collector(graph.context))
        started = time.monotonic()
        camera = graph.add(SyntheticCamera(context=graph.context, parameter_overrides=[
            Parameter("width", value=settings.width), Parameter("height", value=settings.height),
            Parameter("rate", value=settings.rate), Parameter("seed", value=settings.seed),
            Parameter("max_disparity", value=float(settings.max_disparity)),
            Parameter("loop_frames", value=settings.frames), Parameter("wait_for_prerender", value=True)]))
        announce(f"demo: rendering {settings.frames} frames {settings.width}x{settings.height} "
                 "(nothing is published until all exist) ...")
        graph.wait_until(lambda: camera.prerendered() >= settings.frames, timeout=deadline - time.monotonic())
        render_s = time.monotonic() - started
        depth = None
        if camera.prerendered() >= settings.frames and not stopping.requested():
            depth = graph.add(TimedDepthNode(context=graph.context,
                                             parameter_overrides=depth_parameters(settings)))
            announce(f"demo: rendered in {render_s:.1f} s; publishing them in a loop at {settings.rate:g} Hz "
                     f"to the depth node (backend {depth.backend.name} on {depth.backend.device}"
                     f"{depth.backend_note}) ...")
            graph.wait_until(lambda: len(collector.complete()) >= settings.frames,
                             timeout=deadline - time.monotonic())
        stamps = collector.complete()[: settings.frames]
        status = depth.status_summary() if depth is not None else {"counters": {}, "mean_timings": {},
                                                                   "backend_note": ""}
        return DemoRun(collector=collector, stamps=stamps,
                       backend_name=depth.backend.name if depth else settings.backend,
                       backend_device=str(depth.backend.device) if depth else settings.device,
                       status=status, published=camera.published, doffs=camera.geometry.doffs,
                       render_s=render_s, frame_timings=dict(depth.frame_timings) if depth else {},
                       stopped=stopping.requested())
