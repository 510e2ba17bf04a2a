"""A stereo camera driver that films the package's procedural scene (no hardware needed).

Publishes, as a rectified stereo driver does: left/image_rect and right/image_rect (rgb8),
left/camera_info and right/camera_info (right P[3] = -fx * baseline), at ``rate`` Hz, plus the
exact ground truth of each frame with the same stamp: ground_truth/disparity (32FC1, match
shift in px, left view) and ground_truth/depth (32FC1, metres).

Frames come from data.synthetic.SceneSequence and are rendered in a background thread:
``loop_frames`` = 0 renders an endless sequence a couple of frames ahead; N > 0 renders N
frames once and replays them in a loop (``wait_for_prerender`` holds the stream until all N
exist, so it then runs at ``rate`` from the first message). A tick with no frame ready is
skipped and counted (``late_ticks``), never blocks the executor.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.compat import CvBridge


@dataclass
class _Frame:
    index: int
    left: Image
    right: Image
    gt_disparity: Image
    gt_depth: Image


class SyntheticCamera(Node):
    def __init__(self, node_name: str = "synthetic_camera", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

        def declare(name: str, default: Any, description: str, rng: tuple | None = None) -> Any:
            d = ParameterDescriptor(description=description, read_only=True)
            if rng is not None and isinstance(default, int) and not isinstance(default, bool):
                d.integer_range = [IntegerRange(from_value=rng[0], to_value=rng[1], step=1)]
            elif rng is not None and isinstance(default, float):
                d.floating_point_range = [FloatingPointRange(from_value=rng[0], to_value=rng[1])]
            return self.declare_parameter(name, default, d).value

        self.rate = declare("rate", 10.0, "Frames per second", (0.1, 1000.0))
        width = declare("width", 640, "Image width in pixels", (16, 8192))
        height = declare("height", 480, "Image height in pixels", (16, 8192))
        seed = declare("seed", 0, "Scene seed (same seed, same sequence)", (0, 2**31 - 1))
        max_disparity = declare("max_disparity", 128.0, "Largest disparity in the scene, px",
                                (1.0, 1024.0))
        fx = declare("fx", 0.0, "Focal length in px; 0 = 0.625 * width (about 77 deg FOV)",
                     (0.0, 100000.0))
        baseline = declare("baseline", 0.12, "Stereo baseline in metres", (0.001, 10.0))
        photometric = declare("photometric", True, "Camera effects (noise, vignetting, gain)")
        self.loop_frames = declare("loop_frames", 0, "0: endless new frames; N: render N frames "
                                   "once and replay them in a loop", (0, 100000))
        self.wait_for_prerender = declare("wait_for_prerender", False, "With loop_frames > 0: "
                                          "publish nothing until all frames are rendered")
        self.left_frame = declare("left_frame_id", "stereo_left_optical_frame", "Left optical frame")
        self.right_frame = declare("right_frame_id", "stereo_right_optical_frame", "Right optical frame")
        depth = declare("qos_depth", 5, "Publisher history depth (reliable)", (1, 1000))

        from stereo_depth_ros.data.synthetic import SceneSequence, StereoRig

        self.rig = StereoRig.for_size(width, height, fx=fx or None, baseline=baseline)
        self.geometry = self.rig.geometry()
        self._sequence = SceneSequence(seed, self.rig, max_disparity=max_disparity,
                                       photometric=photometric)
        qos = QoSProfile(depth=depth)
        self.pub_left = self.create_publisher(Image, "left/image_rect", qos)
        self.pub_right = self.create_publisher(Image, "right/image_rect", qos)
        self.pub_left_info = self.create_publisher(CameraInfo, "left/camera_info", qos)
        self.pub_right_info = self.create_publisher(CameraInfo, "right/camera_info", qos)
        self.pub_gt_disparity = self.create_publisher(Image, "ground_truth/disparity", qos)
        self.pub_gt_depth = self.create_publisher(Image, "ground_truth/depth", qos)

        self._bridge = CvBridge()
        self._cache: list[_Frame] = []
        self._ahead: deque[_Frame] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.published = 0
        self.late_ticks = 0
        self._next = 0
        self._renderer = threading.Thread(target=self._render_loop, name=f"{node_name}_render", daemon=True)
        self._renderer.start()
        self._timer = self.create_timer(1.0 / self.rate, self._tick)
        self.get_logger().info(
            f"synthetic stereo camera {width}x{height} at {self.rate:g} Hz, fx {self.rig.fx:g}, "
            f"baseline {baseline:g} m, max disparity {max_disparity:g} px, seed {seed}"
            + (f", {self.loop_frames} frames in a loop" if self.loop_frames else ""))

    # ---- rendering (background thread) ----
    def _render(self, index: int) -> _Frame:
        s = self._sequence.frame(index)
        h = Header()
        return _Frame(
            index=index,
            left=self._bridge.cv2_to_imgmsg(np.ascontiguousarray(s.left), "rgb8", h),
            right=self._bridge.cv2_to_imgmsg(np.ascontiguousarray(s.right), "rgb8", Header()),
            gt_disparity=conv.depth_msg(s.disparity, Header()),
            gt_depth=conv.depth_msg(s.depth, Header()),
        )

    def _render_loop(self) -> None:
        index = 0
        while True:
            with self._cond:
                if self.loop_frames:
                    if index >= self.loop_frames or self._stop:
                        return
                else:
                    while len(self._ahead) >= 2 and not self._stop:
                        self._cond.wait(0.5)
                    if self._stop:
                        return
            try:
                frame = self._render(index)
            except Exception as exc:  # a broken scene must not kill the node silently
                self.get_logger().error(f"rendering frame {index} failed: {exc!r}")
                return
            with self._cond:
                (self._cache if self.loop_frames else self._ahead).append(frame)
                self._cond.notify_all()
            index += 1

    def prerendered(self) -> int:
        with self._cond:
            return len(self._cache) if self.loop_frames else len(self._ahead)

    # ---- publishing (timer) ----
    def _take(self) -> _Frame | None:
        with self._cond:
            if self.loop_frames:
                if self.wait_for_prerender and len(self._cache) < self.loop_frames:
                    return None
                if self._next >= len(self._cache):
                    return None
                frame = self._cache[self._next]
                self._next = (self._next + 1) % self.loop_frames
                return frame
            if not self._ahead:
                return None
            frame = self._ahead.popleft()
            self._cond.notify_all()
            return frame

    def _tick(self) -> None:
        frame = self._take()
        if frame is None:
            if not (self.loop_frames and self.wait_for_prerender):
                self.late_ticks += 1
                self.get_logger().warning("rendering is slower than the rate: tick skipped",
                                          throttle_duration_sec=5.0)
            return
        stamp = self.get_clock().now().to_msg()
        left_header = Header(stamp=stamp, frame_id=self.left_frame)
        for msg in (frame.left, frame.gt_disparity, frame.gt_depth):
            msg.header = Header(stamp=stamp, frame_id=self.left_frame)
        frame.right.header = Header(stamp=stamp, frame_id=self.right_frame)
        left_info = conv.camera_info_from_geometry(self.geometry, left_header)
        right_info = conv.camera_info_from_geometry(self.geometry, left_header, right=True,
                                                    frame_id=self.right_frame)
        self.pub_gt_disparity.publish(frame.gt_disparity)
        self.pub_gt_depth.publish(frame.gt_depth)
        self.pub_left_info.publish(left_info)
        self.pub_right_info.publish(right_info)
        self.pub_left.publish(frame.left)
        self.pub_right.publish(frame.right)
        self.published += 1

    def destroy_node(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._renderer.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from stereo_depth_ros.ros.node_main import spin_node

    return spin_node(SyntheticCamera, "synthetic_camera", args)


if __name__ == "__main__":
    sys.exit(main())
