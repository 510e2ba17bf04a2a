"""The demo's graph over real ROS 2 (``stereo-depth demo``): the synthetic camera -> the depth
node -> a collector that keeps every output and the camera's ground truth by stamp."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, PointCloud2
from stereo_msgs.msg import DisparityImage

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
    status summary and the camera's disparity offset (cx_l - cx_r)."""

    collector: Collector
    stamps: list[int]
    backend_name: str
    backend_device: str
    status: dict[str, Any]
    published: int
    doffs: float


def depth_parameters(settings: DemoSettings) -> list[Parameter]:
    backend = default_backend_name() if settings.backend == "default" else settings.backend
    params = [Parameter("backend", value=settings.backend), Parameter("model", value=settings.model),
              Parameter("device", value=settings.device), Parameter("queue_size", value=10),
              Parameter("lazy_outputs", value=False)]
    if backend == "sgbm":  # search the whole range the scene can hold (a multiple of 16)
        span = max(32, int(math.ceil((settings.max_disparity + 1) / 16.0)) * 16)
        params.append(Parameter("disparity_range", value=span))
    return params


def run_demo_graph(settings: DemoSettings, timeout: float, announce: Any = print) -> DemoRun:
    """Run the graph until ``settings.frames`` frames are complete or ``timeout`` seconds pass.
    Raises BackendError when the depth node's backend cannot start."""
    deadline = time.monotonic() + timeout
    with NodeGraph() as graph:
        collector = graph.add(Collector(graph.context))
        camera = graph.add(SyntheticCamera(context=graph.context, parameter_overrides=[
            Parameter("width", value=settings.width), Parameter("height", value=settings.height),
            Parameter("rate", value=settings.rate), Parameter("seed", value=settings.seed),
            Parameter("max_disparity", value=float(settings.max_disparity)),
            Parameter("loop_frames", value=settings.frames), Parameter("wait_for_prerender", value=True)]))
        depth = graph.add(DepthNode(context=graph.context, parameter_overrides=depth_parameters(settings)))
        announce(f"demo: {settings.width}x{settings.height}, {settings.frames} frames, backend "
                 f"{depth.backend.name} on {depth.backend.device}{depth.backend_note}; "
                 "rendering the scene ...")
        graph.wait_until(lambda: len(collector.complete()) >= settings.frames,
                         timeout=deadline - time.monotonic())
        return DemoRun(collector=collector, stamps=collector.complete()[: settings.frames],
                       backend_name=depth.backend.name, backend_device=str(depth.backend.device),
                       status=depth.status_summary(), published=camera.published,
                       doffs=camera.geometry.doffs)
