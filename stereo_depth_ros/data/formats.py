"""File formats of stereo datasets: PFM, KITTI 16-bit disparity PNG, images and depth maps.

Every reader raises :class:`DataFormatError` (a ValueError) naming the file and what is
wrong with it; nothing returns silently-garbled data.

PFM (Portable Float Map): a text header ``PF`` (3 channels) or ``Pf`` (1 channel), then
``width height``, then a scale whose sign gives the byte order (negative = little endian),
each on its own line, then float32 rows stored bottom-to-top. Values, ``inf`` included,
are kept as they are (Middlebury marks unknown disparity with ``inf``).

KITTI disparity PNG: uint16, disparity = value / 256, 0 = no ground truth (NaN here).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np


class DataFormatError(ValueError):
    """A dataset file is missing, truncated or not in the format it should be."""


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")


def read_pfm(path: str | Path) -> np.ndarray:
    """(H, W) or (H, W, 3) float32, top row first."""
    path = Path(path)
    _need_file(path)
    data = path.read_bytes()
    # Header: three whitespace-separated tokens after the magic, newline-terminated lines.
    match = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data)
    if match is None:
        head = data[:2]
        if head not in (b"PF", b"Pf"):
            raise DataFormatError(f"{path}: not a PFM file (starts with {head!r}, expected PF or Pf)")
        raise DataFormatError(f"{path}: malformed PFM header")
    channels = 3 if match.group(1) == b"PF" else 1
    width, height = int(match.group(2)), int(match.group(3))
    try:
        scale = float(match.group(4))
    except ValueError as exc:
        raise DataFormatError(f"{path}: malformed PFM scale {match.group(4)!r}") from exc
    if width <= 0 or height <= 0 or scale == 0:
        raise DataFormatError(f"{path}: invalid PFM header (size {width}x{height}, scale {scale})")
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    count = width * height * channels
    offset = match.end()
    available = (len(data) - offset) // 4
    if available < count:
        raise DataFormatError(
            f"{path}: truncated PFM: header says {width}x{height}x{channels} "
            f"({count} floats) but only {available} are present")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(values.reshape(shape)).astype(np.float32)


def write_pfm(path: str | Path, array: np.ndarray, little_endian: bool = True) -> Path:
    """Write (H, W) or (H, W, 3) floats as PFM (rows bottom-to-top, as the format stores them)."""
    path = Path(path)
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        magic = b"Pf"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        magic = b"PF"
    else:
        raise DataFormatError(f"{path}: PFM holds (H, W) or (H, W, 3) arrays, got {arr.shape}")
    h, w = arr.shape[:2]
    dtype = "<f4" if little_endian else ">f4"
    scale = b"-1.0" if little_endian else b"1.0"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = np.ascontiguousarray(np.flipud(arr)).astype(dtype).tobytes()
    path.write_bytes(magic + b"\n" + f"{w} {h}".encode() + b"\n" + scale + b"\n" + body)
    return path


def read_kitti_disparity(path: str | Path) -> np.ndarray:
    """(H, W) float32 disparity in pixels, NaN where the PNG holds 0 (no ground truth)."""
    path = Path(path)
    _need_file(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataFormatError(f"{path}: unreadable or corrupt PNG")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DataFormatError(
            f"{path}: KITTI disparity must be a 16-bit single-channel PNG, got {raw.dtype} "
            f"with shape {raw.shape}")
    disp = raw.astype(np.float32) / 256.0
    disp[raw == 0] = np.nan
    return disp


def write_kitti_disparity(path: str | Path, disparity: np.ndarray) -> Path:
    """Write disparity as KITTI uint16 PNG (value*256); NaN, inf and <= 0 become 0 (invalid)."""
    path = Path(path)
    d = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    raw = np.zeros(d.shape, np.uint16)
    raw[valid] = np.clip(np.round(d[valid] * 256.0), 1, 65535).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), raw):
        raise DataFormatError(f"{path}: could not write PNG")
    return path


def read_image(path: str | Path) -> np.ndarray:
    """Any image OpenCV reads -> (H, W, 3) uint8 RGB (grey replicated, 16-bit scaled, alpha dropped)."""
    path = Path(path)
    _need_file(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataFormatError(f"{path}: unreadable or corrupt image")
    if raw.dtype == np.uint16:
        raw = (raw.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif raw.dtype != np.uint8:
        raise DataFormatError(f"{path}: unsupported image depth {raw.dtype}")
    if raw.ndim == 2:
        return np.repeat(raw[..., None], 3, axis=2)
    if raw.shape[2] == 4:
        raw = raw[..., :3]
    if raw.shape[2] == 1:
        return np.repeat(raw, 3, axis=2)
    return np.ascontiguousarray(raw[..., ::-1])


def read_mask(path: str | Path, value: int = 255) -> np.ndarray:
    """A mask PNG -> bool (H, W), True where the pixel equals ``value`` (Middlebury: 255)."""
    path = Path(path)
    _need_file(path)
    raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if raw is None:
        raise DataFormatError(f"{path}: unreadable or corrupt mask image")
    return raw == value


def read_depth(path: str | Path) -> np.ndarray:
    """A depth map in metres from .npy (2-D float) or .pfm -> (H, W) float32 (NaN kept)."""
    path = Path(path)
    _need_file(path)
    suffix = path.suffix.lower()
    if suffix == ".pfm":
        depth = read_pfm(path)
    elif suffix == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataFormatError(f"{path}: unreadable .npy ({exc})") from exc
    else:
        raise DataFormatError(f"{path}: unknown depth format {suffix!r} (expected .pfm or .npy)")
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise DataFormatError(f"{path}: depth must be a 2-D float array, got {depth.dtype} "
                              f"{depth.shape}")
    return depth.astype(np.float32)
