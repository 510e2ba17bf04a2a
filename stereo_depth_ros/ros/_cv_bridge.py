"""The package's own cv_bridge equivalent (used when ROS's cv_bridge is absent).

Same call shapes as ``cv_bridge.CvBridge``: ``imgmsg_to_cv2(msg, desired_encoding='passthrough')``
and ``cv2_to_imgmsg(cvim, encoding='passthrough', header=None)``, raising ``CvBridgeError``.
Rows padded beyond ``width * pixel size`` (``step``) and big-endian data are handled.
Colour conversion covers the 8-bit colour/mono encodings; 16-bit mono converts to 8 bit by
scaling 0..65535 to 0..255 as cv_bridge does.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image


class CvBridgeError(TypeError):
    """An image that cannot be converted; the message names the encoding or size at fault."""


# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "mono8": ("uint8", 1), "mono16": ("uint16", 1),
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "rgb16": ("uint16", 3), "bgr16": ("uint16", 3), "rgba16": ("uint16", 4), "bgra16": ("uint16", 4),
}
_CV_DTYPES = {"8U": "uint8", "8S": "int8", "16U": "uint16", "16S": "int16", "32S": "int32",
              "32F": "float32", "64F": "float64"}
for _depth, _dtype in _CV_DTYPES.items():
    for _ch in (1, 2, 3, 4):
        ENCODINGS[f"{_depth}C{_ch}"] = (_dtype, _ch)
_COLOUR_ORDER = {"mono8": "L", "mono16": "L", "rgb8": "RGB", "bgr8": "BGR", "rgba8": "RGBA",
                 "bgra8": "BGRA", "rgb16": "RGB", "bgr16": "BGR", "rgba16": "RGBA", "bgra16": "BGRA"}
_CVT = {
    ("L", "RGB"): cv2.COLOR_GRAY2RGB, ("L", "BGR"): cv2.COLOR_GRAY2BGR,
    ("L", "RGBA"): cv2.COLOR_GRAY2RGBA, ("L", "BGRA"): cv2.COLOR_GRAY2BGRA,
    ("RGB", "L"): cv2.COLOR_RGB2GRAY, ("BGR", "L"): cv2.COLOR_BGR2GRAY,
    ("RGBA", "L"): cv2.COLOR_RGBA2GRAY, ("BGRA", "L"): cv2.COLOR_BGRA2GRAY,
    ("RGB", "BGR"): cv2.COLOR_RGB2BGR, ("BGR", "RGB"): cv2.COLOR_BGR2RGB,
    ("RGB", "RGBA"): cv2.COLOR_RGB2RGBA, ("RGB", "BGRA"): cv2.COLOR_RGB2BGRA,
    ("BGR", "RGBA"): cv2.COLOR_BGR2RGBA, ("BGR", "BGRA"): cv2.COLOR_BGR2BGRA,
    ("RGBA", "RGB"): cv2.COLOR_RGBA2RGB, ("RGBA", "BGR"): cv2.COLOR_RGBA2BGR,
    ("BGRA", "RGB"): cv2.COLOR_BGRA2RGB, ("BGRA", "BGR"): cv2.COLOR_BGRA2BGR,
    ("RGBA", "BGRA"): cv2.COLOR_RGBA2BGRA, ("BGRA", "RGBA"): cv2.COLOR_BGRA2RGBA,
}


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    if encoding not in ENCODINGS:
        raise CvBridgeError(f"unsupported image encoding {encoding!r}")
    dtype, channels = ENCODINGS[encoding]
    return np.dtype(dtype), channels


class CvBridge:
    """Converts between sensor_msgs/Image and numpy arrays (OpenCV images)."""

    def imgmsg_to_cv2(self, img_msg: Image, desired_encoding: str = "passthrough") -> np.ndarray:
        dtype, channels = encoding_info(img_msg.encoding)
        if img_msg.is_bigendian:
            dtype = dtype.newbyteorder(">")
        h, w = int(img_msg.height), int(img_msg.width)
        row_bytes = w * channels * dtype.itemsize
        step = int(img_msg.step)
        if step < row_bytes:
            raise CvBridgeError(
                f"image step {step} is smaller than width*pixel size {row_bytes} ({img_msg.encoding})")
        buf = np.frombuffer(img_msg.data, dtype=np.uint8)
        if buf.size < step * h:
            raise CvBridgeError(
                f"image data holds {buf.size} bytes, {h} rows of step {step} need {step * h}")
        rows = buf[: step * h].reshape(h, step)[:, :row_bytes]
        img = np.ascontiguousarray(rows).view(dtype).reshape((h, w, channels) if channels > 1 else (h, w))
        if img_msg.is_bigendian:
            img = img.astype(dtype.newbyteorder("="))
        if desired_encoding in ("passthrough", img_msg.encoding):
            return img
        return self._convert(img, img_msg.encoding, desired_encoding)

    def cv2_to_imgmsg(self, cvim: np.ndarray, encoding: str = "passthrough",
                      header: Any | None = None) -> Image:
        if not isinstance(cvim, np.ndarray):
            raise CvBridgeError(f"expected a numpy array, got {type(cvim).__name__}")
        img = np.ascontiguousarray(cvim)
        channels = 1 if img.ndim == 2 else img.shape[2]
        if img.ndim not in (2, 3):
            raise CvBridgeError(f"an image must be 2-D or 3-D, got shape {img.shape}")
        if encoding == "passthrough":
            depth = {v: k for k, v in _CV_DTYPES.items()}.get(img.dtype.name)
            if depth is None:
                raise CvBridgeError(f"no image encoding for dtype {img.dtype}")
            encoding = f"{depth}C{channels}"
        dtype, want_channels = encoding_info(encoding)
        if img.dtype != dtype or channels != want_channels:
            raise CvBridgeError(
                f"encoding {encoding!r} expects {want_channels} channel(s) of {dtype}, "
                f"got {channels} of {img.dtype}")
        msg = Image()
        if header is not None:
            msg.header = header
        msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
        msg.encoding = encoding
        msg.is_bigendian = img.dtype.byteorder == ">"
        msg.step = int(img.shape[1] * channels * img.dtype.itemsize)
        data = array.array("B")
        data.frombytes(img.tobytes())
        msg.data = data
        return msg

    @staticmethod
    def _convert(img: np.ndarray, src: str, dst: str) -> np.ndarray:
        if src not in _COLOUR_ORDER or dst not in _COLOUR_ORDER:
            raise CvBridgeError(f"cannot convert image from {src!r} to {dst!r}")
        src_dtype, _ = encoding_info(src)
        dst_dtype, _ = encoding_info(dst)
        if src_dtype != dst_dtype:
            scale = (255.0 / 65535.0) if dst_dtype == np.uint8 else (65535.0 / 255.0)
            img = (img.astype(np.float32) * scale + 0.5).astype(dst_dtype)
        a, b = _COLOUR_ORDER[src], _COLOUR_ORDER[dst]
        if a == b:
            return img
        return cv2.cvtColor(img, _CVT[(a, b)])
