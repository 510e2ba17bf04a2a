"""Checks the depth node runs on every input set before any decoding or model work.

Each check raises a typed error whose message names what is wrong, so the node can count it
by cause and keep serving the next frame. No rclpy here: messages are read by attribute.

- image layout: supported encoding, non-empty, ``step`` and data length consistent with
  width x height x pixel size, at most ``max_pixels`` pixels (checked before decoding, so a
  huge frame costs nothing), at least the backend's minimum size;
- :class:`StampGuard`: synchronized sets whose stamp repeats or goes back in time are refused
  (their outputs would be stale), unless the clock was visibly restarted (a bag loop);
- frame ids: an image and its camera_info must name the same frame;
- focal lengths: the left and right projections of a rectified pair must share fx.
"""

from __future__ import annotations

from typing import Any

from stereo_depth_ros.backends.sgbm import valid_window
from stereo_depth_ros.ros.conversions import (
    SUPPORTED_ENCODINGS,
    ConversionError,
    EmptyImage,
    UnsupportedEncoding,
)

BYTES_PER_PIXEL = {"mono8": 1, "mono16": 2, "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}
FLOAT_ENCODINGS = ("32FC1", "32FC3", "64FC1", "16FC1")


class BadLayout(ConversionError):
    """step / data length inconsistent with width, height and encoding."""


class ImageTooLarge(ConversionError):
    pass


class ImageTooSmall(ConversionError):
    pass


def check_image(msg: Any, side: str, max_pixels: int = 0) -> None:
    """Raise a ConversionError subclass when ``msg`` cannot be a usable stereo image."""
    encoding = str(msg.encoding)
    if encoding not in SUPPORTED_ENCODINGS:
        why = (" (float images are not camera images: NaN/inf pixels cannot be matched)"
               if encoding in FLOAT_ENCODINGS else "")
        raise UnsupportedEncoding(f"{side} image has unsupported encoding {encoding!r}{why}: use one "
                                  f"of {', '.join(SUPPORTED_ENCODINGS)}")
    width, height, step, size = int(msg.width), int(msg.height), int(msg.step), len(msg.data)
    if width == 0 or height == 0 or size == 0:
        raise EmptyImage(f"{side} image is empty ({width}x{height}, {size} bytes)")
    if max_pixels > 0 and width * height > max_pixels:
        raise ImageTooLarge(f"{side} image is {width}x{height} = {width * height} pixels, more than "
                            f"max_image_pixels = {max_pixels}: refused before decoding (raise the "
                            "parameter, or 0 for no limit, if the machine can take it)")
    row = width * BYTES_PER_PIXEL[encoding]
    if step < row:
        raise BadLayout(f"{side} image step {step} is smaller than width x pixel size = {width} x "
                        f"{BYTES_PER_PIXEL[encoding]} = {row} bytes ({encoding})")
    if size < step * height:
        raise BadLayout(f"{side} image data holds {size} bytes but {height} rows of step {step} "
                        f"need {step * height}")


def minimum_size(backend: Any) -> tuple[int, int]:
    """Smallest (width, height) the backend can return any valid disparity for."""
    params = getattr(backend, "params", None)
    if params is not None and hasattr(params, "disparity_range"):  # SGBM/BM
        border = params.correlation_window_size // 2
        # the valid window loses a fixed number of columns whatever the width: probe one
        _, _, w, _ = valid_window(4096, 16, params.min_disparity, params.disparity_range,
                                  params.correlation_window_size)
        return max(4096 - w + 1, 1), 2 * border + 2
    model = getattr(getattr(backend, "estimator", None), "model", None)
    multiple = int(getattr(model, "multiple", 16) or 16)
    return multiple, multiple


def check_minimum(width: int, height: int, backend: Any) -> None:
    min_w, min_h = minimum_size(backend)
    if width < min_w or height < min_h:
        raise ImageTooSmall(f"image is {width}x{height} but backend {getattr(backend, 'name', '?')} "
                            f"needs at least {min_w}x{min_h} (search range and window)")


def check_frames(image: Any, info: Any, side: str) -> str | None:
    """A message when the image and its camera_info name different frames, else None."""
    a, b = str(image.header.frame_id), str(info.header.frame_id)
    if a and b and a != b:
        return (f"{side} image frame_id {a!r} differs from {side} camera_info frame_id {b!r}: "
                "are the topics from the same camera?")
    return None


def check_focal(left_info: Any, right_info: Any, tolerance: float = 1e-3) -> str | None:
    """A message when the left and right projections have different focal lengths (a rectified
    pair shares one), else None. The depth image uses the left fx, DisparityImage.f is the right
    fx (stereo_image_proc), so the two outputs would disagree by their ratio."""
    fl, fr = float(left_info.p[0]), float(right_info.p[0])
    if fl > 0 and fr > 0 and abs(fl - fr) > tolerance * max(fl, fr):
        return (f"left fx {fl:g} differs from right fx {fr:g}, but a rectified pair shares one: the depth "
                f"image uses the left fx, DisparityImage.f is the right one, so depth from the disparity "
                f"message would be {fr / fl:.3g} x the depth image; check the calibration (processed anyway)")
    return None


class StampGuard:
    """Refuses synchronized sets that repeat or go back in time.

    A set older than the last accepted one by more than ``reset_after_s`` seconds, or
    ``reset_count`` stale sets in a row, means the clock restarted (a bag replayed from its
    start, a simulator reset): the guard then accepts it and reports a reset.
    """

    def __init__(self, reset_after_s: float = 1.0, reset_count: int = 5) -> None:
        self.reset_after_ns = int(reset_after_s * 1e9)
        self.reset_count = reset_count
        self.last_ns: int | None = None
        self._stale_run = 0

    def check(self, stamp_ns: int) -> str:
        """'ok', 'reset' (accepted, clock restarted), 'duplicate' or 'out_of_order' (refuse)."""
        last = self.last_ns
        if last is None or stamp_ns > last:
            self.last_ns, self._stale_run = stamp_ns, 0
            return "ok"
        if stamp_ns == last:  # a frozen driver repeats itself: never a clock restart
            return "duplicate"
        self._stale_run += 1
        if last - stamp_ns > self.reset_after_ns or self._stale_run >= self.reset_count:
            self.last_ns, self._stale_run = stamp_ns, 0
            return "reset"
        return "out_of_order"
