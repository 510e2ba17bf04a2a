"""The depth node under the benchmark: a DepthNode in its own rclpy context, fed frames over
in-process DDS by a harness node, with its per-stage timings read back (``stereo-depth bench``)."""

from __future__ import annotations

import os
import statistics
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros._cv_bridge import CvBridge
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph


class NodeBench:
    """A DepthNode in its own rclpy context, fed over in-process DDS; stage timings per frame."""

    def __init__(self) -> None:
        self.graph = NodeGraph()
        ns = f"/bench_{os.getpid()}"
        ctx = self.graph.context
        self.node = self.graph.add(DepthNode(namespace=ns, context=ctx, parameter_overrides=[
            Parameter("backend", value="sgbm"), Parameter("input_reliability", value="reliable"),
            Parameter("queue_size", value=2)]))
        self.harness = self.graph.add(Node("bench_harness", namespace=ns, context=ctx))
        qos = QoSProfile(depth=2)
        self.pubs = [self.harness.create_publisher(t, name, qos) for t, name in (
            (Image, "left/image_rect"), (CameraInfo, "left/camera_info"),
            (Image, "right/image_rect"), (CameraInfo, "right/camera_info"))]
        self.received = 0
        self._frames = 0  # stamps keep increasing across runs (a stamp going back is a time reset)
        self._qos = qos
        self._outputs = ((DisparityImage, "disparity"), (Image, "depth"), (PointCloud2, "points2"))
        self._sinks: list[Any] = []
        try:
            ok = self.graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in self.pubs), 10.0)
            if not ok:
                raise RuntimeError("the depth node and the bench harness did not discover each other in 10 s")
            self.subscribe(True)
        except Exception:
            self.close()
            raise

    def subscribe(self, on: bool) -> None:
        """Subscribe the sink to every output (``on``) or to none, and wait until the node sees it."""
        if on and not self._sinks:
            self._sinks = [self.harness.create_subscription(t, name, self._sink, self._qos)
                           for t, name in self._outputs]
        elif not on:
            for sub in self._sinks:
                self.harness.destroy_subscription(sub)
            self._sinks = []
        pubs = (self.node.pub_disparity, self.node.pub_depth, self.node.pub_points)
        if not self.graph.wait_until(lambda: all((p.get_subscription_count() > 0) == on for p in pubs), 10.0):
            what = "appear" if on else "go"
            raise RuntimeError(f"the depth node did not see the bench's subscribers {what} in 10 s")

    def _sink(self, _msg: Any) -> None:
        self.received += 1

    def run(self, backend: Any, sample: Any, repeats: int, warmup: int,
            subscribed: bool = True) -> dict[str, float]:
        """Median per-stage milliseconds over ``repeats`` frames (after ``warmup``), with the sink
        subscribed to every output or (``subscribed=False``) to none."""
        self.subscribe(subscribed)
        with self.node._backend_lock:  # the node's own backend swap point (as on a parameter change)
            self.node.backend = backend
        geom = sample.rig.geometry()
        bridge = CvBridge()
        stages: dict[str, list[float]] = {}
        for i in range(warmup + repeats):
            self._frames += 1
            stamp = 1_000_000_000 * self._frames + 7
            h = Header(frame_id="bench_left")
            h.stamp.sec, h.stamp.nanosec = divmod(stamp, 10**9)
            msgs = (bridge.cv2_to_imgmsg(sample.left, "rgb8", h), conv.camera_info_from_geometry(geom, h),
                    bridge.cv2_to_imgmsg(sample.right, "rgb8", h),
                    conv.camera_info_from_geometry(geom, h, right=True))
            before = self.node.counters["processed"]
            for pub, msg in zip(self.pubs, msgs, strict=True):
                pub.publish(msg)
            if not self.graph.wait_until(lambda b=before: self.node.counters["processed"] > b, 30.0):
                raise RuntimeError(f"the depth node processed no frame in 30 s: {self.node.last_error}")
            if i >= warmup:
                for k, v in self.node.last_timings.items():
                    stages.setdefault(k, []).append(v * 1000.0)
        out = {k: statistics.median(v) for k, v in stages.items()}
        out["overhead"] = statistics.median(
            [t - m for t, m in zip(stages["total"], stages["model"], strict=True)])
        return out

    def close(self) -> None:
        self.graph.close()
