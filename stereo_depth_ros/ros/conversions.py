"""Messages <-> arrays for the depth node: images in, DisparityImage / depth / PointCloud2 out.

Images go through the compat seam's CvBridge (ROS's cv_bridge when importable) and are turned
into the (H, W, 3) uint8 RGB the backends take. Errors are typed so the node can count them.
"""

from __future__ import annotations

import array
import math
from typing import Any

import numpy as np
import torch
from builtin_interfaces.msg import Time as TimeMsg
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from stereo_depth_ros import disparity_convention
from stereo_depth_ros.backends.base import DisparityResult
from stereo_depth_ros.geometry import CameraModelError, StereoGeometry
from stereo_depth_ros.pointcloud import CloudPayload
from stereo_depth_ros.ros.compat import CvBridge

SUPPORTED_ENCODINGS = ("mono8", "mono16", "rgb8", "bgr8", "rgba8", "bgra8")
_BRIDGE = CvBridge()


class ConversionError(ValueError):
    """An input message that cannot be used; the message says what is wrong."""


class UnsupportedEncoding(ConversionError):
    pass


class EmptyImage(ConversionError):
    pass


class SizeMismatch(ConversionError):
    pass


def _to_array(msg: Image, side: str) -> np.ndarray:
    if msg.encoding not in SUPPORTED_ENCODINGS:
        raise UnsupportedEncoding(
            f"{side} image has unsupported encoding {msg.encoding!r}: use one of "
            f"{', '.join(SUPPORTED_ENCODINGS)}")
    if msg.width == 0 or msg.height == 0 or len(msg.data) == 0:
        raise EmptyImage(f"{side} image is empty ({msg.width}x{msg.height}, {len(msg.data)} bytes)")
    try:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    except Exception as exc:  # cv_bridge raises its own error types; keep the reason
        raise ConversionError(f"{side} image ({msg.encoding}, {msg.width}x{msg.height}, "
                              f"step {msg.step}) cannot be read: {exc}") from exc


def _mono16_scale(*images: np.ndarray) -> float:
    """One scale for both images so they stay comparable: their common bit depth -> 8 bit
    (12-bit data in a 16-bit container maps 4095 -> 255, not to a dark 16)."""
    peak = max(int(img.max()) for img in images)
    bits = max(8, int(math.ceil(math.log2(peak + 1)))) if peak > 0 else 8
    return 255.0 / float((1 << bits) - 1)


def to_rgb(img: np.ndarray, encoding: str, mono16_scale: float | None = None) -> np.ndarray:
    """A decoded image of a supported encoding -> (H, W, 3) uint8 RGB."""
    if encoding == "mono16":
        scale = _mono16_scale(img) if mono16_scale is None else mono16_scale
        img = np.clip(img.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
        encoding = "mono8"
    if encoding == "mono8":
        return np.repeat(img[:, :, None], 3, axis=2)
    if encoding == "rgb8":
        return np.ascontiguousarray(img)
    if encoding == "rgba8":
        return np.ascontiguousarray(img[:, :, :3])
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(img[:, :, 2::-1])
    raise UnsupportedEncoding(f"unsupported image encoding {encoding!r}")


def image_to_rgb(msg: Image, side: str = "image") -> np.ndarray:
    return to_rgb(_to_array(msg, side), msg.encoding)


def stereo_pair_to_rgb(left: Image, right: Image) -> tuple[np.ndarray, np.ndarray]:
    """Both images as RGB uint8, checked to be the same size; mono16 pairs share one scale."""
    lt, rt = _to_array(left, "left"), _to_array(right, "right")
    if lt.shape[:2] != rt.shape[:2]:
        raise SizeMismatch(f"left image is {left.width}x{left.height} but right is "
                           f"{right.width}x{right.height}: a rectified pair must match")
    scale = None
    if left.encoding == "mono16" or right.encoding == "mono16":
        scale = _mono16_scale(*(i for i, m in ((lt, left), (rt, right)) if m.encoding == "mono16"))
    return to_rgb(lt, left.encoding, scale), to_rgb(rt, right.encoding, scale)


def geometry_from_camera_info(left: CameraInfo, right: CameraInfo, width: int, height: int,
                              baseline_override: float | None = None) -> StereoGeometry:
    """StereoGeometry from the pair's camera_info (P matrices), for images of width x height.

    Raises CameraModelError naming the fault: uncalibrated P, a camera_info for another image
    size, or no baseline (right P[3] = 0 and no ``baseline`` override).
    """
    for side, info in (("left", left), ("right", right)):
        if len(info.p) != 12 or not float(info.p[0]) > 0:
            raise CameraModelError(f"{side} camera_info has no projection matrix P (P[0] = "
                                   f"{info.p[0] if len(info.p) else 'missing'}): is the camera calibrated?")
        if info.width and info.height and (info.width, info.height) != (width, height):
            raise CameraModelError(f"{side} camera_info is for {info.width}x{info.height} images but "
                                   f"the image is {width}x{height}")
    override = baseline_override if baseline_override and baseline_override > 0 else None
    return StereoGeometry.from_projections(list(left.p), list(right.p), width, height, override)


def with_frame(header: Header, fallback_frame: str) -> Header:
    """A copy of ``header`` whose frame_id is never empty."""
    return Header(stamp=_copy_stamp(header.stamp), frame_id=header.frame_id or fallback_frame)


def stamp_ns(msg: Any) -> int:
    """A message's header stamp in integer nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _copy_stamp(stamp: Any) -> TimeMsg:
    # rclpy messages keep a reference to an assigned sub-message: copy to stay independent
    return TimeMsg(sec=int(stamp.sec), nanosec=int(stamp.nanosec))


def _float_image(values: np.ndarray, header: Header) -> Image:
    values = np.ascontiguousarray(values, dtype=np.float32)
    msg = Image(header=header, height=int(values.shape[0]), width=int(values.shape[1]),
                encoding="32FC1", is_bigendian=False, step=int(values.shape[1]) * 4,
                check_fields=True)  # see _byte_array
    msg.data = _byte_array(values)
    return msg


def _byte_array(values: np.ndarray) -> array.array:
    """The array's bytes as the array.array('B') rclpy stores uint8[] fields in: one copy.

    A message built with ``check_fields=True`` keeps an assigned array.array('B') as it is;
    without it (rclpy's default unless ROS_PYTHON_CHECK_FIELDS=1) the setter copies it again
    (and bytes or a list would be converted element by element)."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))  # empty arrays too
    return data


def to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float32).cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def disparity_msg(disparity: np.ndarray | torch.Tensor, result: DisparityResult,
                  geometry: StereoGeometry, header: Header, right_fx: float | None = None,
                  invalid: str = disparity_convention.DEFAULT) -> DisparityImage:
    """stereo_msgs/DisparityImage: ``disparity`` is already adjusted for cx_l - cx_r, NaN unknown.

    f = right fx, T = baseline, min/max = the backend's shift range minus (cx_l - cx_r),
    delta_d and valid_window from the backend; header (and image header) = ``header``.
    Unknown pixels become ``min_disparity - 1`` (``invalid="sentinel"``) or NaN (``"nan"``).
    """
    msg = DisparityImage()
    msg.header = header
    msg.min_disparity = float(result.min_disparity - geometry.doffs)
    values = disparity_convention.encode(to_numpy(disparity), msg.min_disparity, invalid)
    msg.image = _float_image(values, header)
    msg.f = float(right_fx if right_fx is not None else geometry.fx)
    msg.t = float(geometry.baseline)
    msg.max_disparity = float(result.max_disparity - geometry.doffs)
    msg.delta_d = float(result.delta_d)
    x, y, w, h = (int(v) for v in result.valid_window)
    msg.valid_window.x_offset, msg.valid_window.y_offset = max(x, 0), max(y, 0)
    msg.valid_window.width, msg.valid_window.height = max(w, 0), max(h, 0)
    msg.valid_window.do_rectify = False
    return msg


def depth_msg(depth: np.ndarray | torch.Tensor, header: Header) -> Image:
    """sensor_msgs/Image 32FC1 in metres, NaN where unknown (REP 118)."""
    return _float_image(to_numpy(depth), header)


def disparity_from_msg(msg: DisparityImage) -> np.ndarray:
    """The disparity, NaN where invalid (below min_disparity, or NaN: either convention)."""
    return disparity_convention.decode(image_32f(msg.image), msg.min_disparity)


def image_32f(msg: Image) -> np.ndarray:
    if msg.encoding != "32FC1":
        raise UnsupportedEncoding(f"expected a 32FC1 image, got {msg.encoding!r}")
    return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough").astype(np.float32, copy=False)


def point_fields(payload: CloudPayload) -> list[PointField]:
    return [PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1)
            for name, offset in payload.fields]


def cloud_msg(payload: CloudPayload, header: Header) -> PointCloud2:
    """sensor_msgs/PointCloud2 carrying the payload's bytes as they are: no copy when the payload
    lives in a CloudBuilder's buffer (then publish before the next build), else one copy."""
    msg = PointCloud2(header=header, height=payload.height, width=payload.width,
                      fields=point_fields(payload), is_bigendian=False,
                      point_step=payload.point_step, row_step=payload.row_step,
                      is_dense=payload.is_dense, check_fields=True)  # see _byte_array
    msg.data = payload.buffer if payload.buffer is not None else _byte_array(payload.points)
    return msg


def camera_info_from_geometry(geometry: StereoGeometry, header: Any, right: bool = False,
                              frame_id: str | None = None) -> CameraInfo:
    """A rectified camera_info as a driver publishes it (right P[3] = -fx * baseline)."""
    g = geometry
    cx = g.cx_right if right else g.cx
    info = CameraInfo()
    frame = frame_id if frame_id is not None else header.frame_id
    info.header = Header(stamp=_copy_stamp(header.stamp), frame_id=frame)
    info.width, info.height = g.width, g.height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [g.fx, 0.0, cx, 0.0, g.fy, g.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [g.fx, 0.0, cx, -g.fx * g.baseline if right else 0.0, 0.0, g.fy, g.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info
