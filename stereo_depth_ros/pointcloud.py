"""Point cloud payloads (PointCloud2 layout) and PLY files from arrays, with no rclpy.

The payload is what a sensor_msgs/PointCloud2 carries: float32 x, y, z (+ rgb packed into a
float32 as (r << 16) | (g << 8) | b, the PCL/RViz convention), one 16-byte point per pixel
(organized H x W, NaN where invalid) or only the valid points (dense). ``build_cloud`` does
it in one vectorized step on the arrays' device (torch: a single transfer to the CPU at the
end); ``build_cloud_reference`` is the per-point loop it must agree with (for tests and
benchmarks only).
"""

from __future__ import annotations

import array
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stereo_depth_ros.geometry import StereoGeometry, reproject

XYZ_FIELDS: tuple[tuple[str, int], ...] = (("x", 0), ("y", 4), ("z", 8))
XYZRGB_FIELDS: tuple[tuple[str, int], ...] = XYZ_FIELDS + (("rgb", 12),)
XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8],
                      "itemsize": 12})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4,
                         "offsets": [0, 4, 8, 12], "itemsize": 16})


@dataclass
class CloudPayload:
    """Points in PointCloud2 layout: ``points`` is a structured array (H, W) or (N,)."""

    points: np.ndarray
    height: int
    width: int
    is_dense: bool
    has_rgb: bool
    # the bytes of ``points`` as an array.array('B') when they live in one (CloudBuilder):
    # a message can take it as its data without a copy
    buffer: array.array | None = None

    @property
    def fields(self) -> tuple[tuple[str, int], ...]:
        """(name, byte offset) of each float32 field."""
        return XYZRGB_FIELDS if self.has_rgb else XYZ_FIELDS

    @property
    def point_step(self) -> int:
        return self.points.dtype.itemsize

    @property
    def row_step(self) -> int:
        return self.point_step * self.width

    def tobytes(self) -> bytes:
        return np.ascontiguousarray(self.points).tobytes()

    def xyz(self) -> np.ndarray:
        """(N, 3) float32 of all points, NaN rows included."""
        flat = self.points.reshape(-1)
        return np.stack([flat["x"], flat["y"], flat["z"]], axis=-1)

    def rgb(self) -> np.ndarray | None:
        """(N, 3) uint8 colours, or None."""
        if not self.has_rgb:
            return None
        return unpack_rgb(self.points.reshape(-1)["rgb"])


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) float32 whose bits are (r << 16) | (g << 8) | b."""
    c = rgb.astype(np.uint32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)


def build_cloud(points: np.ndarray | torch.Tensor, rgb: np.ndarray | torch.Tensor | None = None,
                organized: bool = True) -> CloudPayload:
    """(H, W, 3) float points (NaN invalid) + optional (H, W, 3) uint8 colours -> payload.

    Torch inputs are packed on their device and cross to the CPU once.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (H, W, 3), got {tuple(points.shape)}")
    h, w = int(points.shape[0]), int(points.shape[1])
    if rgb is not None and tuple(rgb.shape) != (h, w, 3):
        raise ValueError(f"colours {tuple(rgb.shape)} do not match points ({h}, {w}, 3)")
    if isinstance(points, torch.Tensor):
        flat = _pack_torch(points, rgb, organized)
    else:
        flat = _pack_numpy(points, rgb, organized)
    has_rgb = rgb is not None
    dtype = XYZRGB_DTYPE if has_rgb else XYZ_DTYPE
    structured = np.ascontiguousarray(flat).view(dtype)[..., 0]  # (H, W) or (N,)
    if organized:
        return CloudPayload(structured, h, w, bool(np.isfinite(flat[..., :3]).all()), has_rgb)
    return CloudPayload(structured, 1, int(structured.shape[0]), True, has_rgb)


def _pack_torch(points: torch.Tensor, rgb: np.ndarray | torch.Tensor | None,
                organized: bool) -> np.ndarray:
    pts = points.to(torch.float32)
    cols = [pts]
    if rgb is not None:
        c = torch.as_tensor(rgb, device=pts.device).to(torch.int32)
        packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
        cols.append(packed.view(torch.float32).unsqueeze(-1))
    out = torch.cat(cols, dim=-1)
    if not organized:
        out = out[torch.isfinite(pts).all(dim=-1)]
    return out.contiguous().cpu().numpy()


def _pack_numpy(points: np.ndarray, rgb: np.ndarray | torch.Tensor | None,
                organized: bool) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float32)
    cols = [pts]
    if rgb is not None:
        rgb_np = rgb.cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
        cols.append(pack_rgb(rgb_np)[..., None])
    out = np.concatenate(cols, axis=-1)
    if not organized:
        out = out[np.isfinite(pts).all(axis=-1)]
    return out


def cloud_from_disparity(disparity: np.ndarray | torch.Tensor, geometry: StereoGeometry,
                         rgb: np.ndarray | torch.Tensor | None = None,
                         organized: bool = True) -> CloudPayload:
    """Published disparity (H, W) -> reprojected points in the left optical frame -> payload."""
    return build_cloud(reproject(disparity, geometry), rgb, organized)


_LITTLE_ENDIAN = sys.byteorder == "little"


def depth_from_disparity(disparity: np.ndarray, geometry: StereoGeometry,
                         out: np.ndarray | None = None) -> np.ndarray:
    """``disparity_to_depth`` for float32 numpy, bit for bit, in fewer passes (into ``out``)."""
    disparity = np.asarray(disparity, dtype=np.float32)
    if out is None:
        out = np.empty(disparity.shape, np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(geometry.focal_baseline, disparity, out=out)
        invalid = ~(disparity > 0)
        invalid |= disparity == np.inf
    out[invalid] = np.nan
    return out


class CloudBuilder:
    """Organized xyz(+rgb) payloads straight from a disparity map, into one reused buffer.

    The same bytes as ``build_cloud(reproject(disparity, geometry), rgb)`` (same float32
    operations in the same order), without the (H, W, 3) points array, the concatenation or
    the copy into a message: x, y, z and the packed colour are computed in contiguous scratch
    planes and interleaved once (cv2.merge) into an ``array.array('B')`` that a PointCloud2
    takes as its data as it is. A payload is valid until the next ``build``: publish it (rclpy
    copies it on publish) or copy it before building the next one. Not thread-safe.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._buffer: array.array | None = None
        self._view: np.ndarray | None = None  # (H, W, 3 or 4) float32 over the buffer
        self._u: np.ndarray | None = None  # (W,) u - cx
        self._v: np.ndarray | None = None  # (H, 1) v - cy
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._colour: np.ndarray | None = None  # (H, W, 4) uint8: b, g, r, 0 = the packed float

    def _prepare(self, h: int, w: int, fields: int, geometry: StereoGeometry) -> None:
        key = (h, w, fields, geometry.cx, geometry.cy)
        if key == self._key:
            return
        if self._view is None or self._view.shape != (h, w, fields):
            self._buffer = array.array("B", bytes(h * w * fields * 4))
            self._view = np.frombuffer(self._buffer, dtype=np.float32).reshape(h, w, fields)
            self._x, self._y = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
            self._colour = np.empty((h, w, 4), np.uint8)
        # as reproject builds them: float32 grids minus the centre, in float32
        self._u = np.arange(w, dtype=np.float32) - geometry.cx
        self._v = (np.arange(h, dtype=np.float32) - geometry.cy)[:, None]
        self._key = key

    def _pack_colour(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 view of the packed colours, in the scratch plane."""
        rgb = np.asarray(rgb)
        if _LITTLE_ENDIAN and rgb.dtype == np.uint8:
            # little-endian bytes of (r << 16) | (g << 8) | b are b, g, r, 0: BGRA with alpha 0
            cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=self._colour)
            bits = self._colour.view(np.uint32)
            np.bitwise_and(bits, np.uint32(0x00FFFFFF), out=bits)
        else:
            self._colour.view(np.float32)[..., 0] = pack_rgb(rgb)
        return self._colour.view(np.float32)[..., 0]

    def build(self, disparity: np.ndarray, geometry: StereoGeometry, rgb: np.ndarray | None = None,
              depth: np.ndarray | None = None, organized: bool = True) -> CloudPayload:
        """(H, W) float32 published disparity (+ (H, W, 3) uint8 colours) -> payload.

        ``depth`` (``depth_from_disparity`` of the same disparity) saves computing it again.
        ``organized=False`` returns a fresh array of the valid points (no shared buffer).
        """
        disparity = np.asarray(disparity, dtype=np.float32)
        if disparity.ndim != 2:
            raise ValueError(f"disparity must be (H, W), got {disparity.shape}")
        h, w = disparity.shape
        if rgb is not None and tuple(rgb.shape) != (h, w, 3):
            raise ValueError(f"colours {tuple(rgb.shape)} do not match the disparity ({h}, {w}, 3)")
        fields = 4 if rgb is not None else 3
        self._prepare(h, w, fields, geometry)
        z = depth_from_disparity(disparity, geometry) if depth is None else np.asarray(depth, np.float32)
        x, y = self._x, self._y
        np.multiply(self._u, z, out=x)  # x = (u - cx) * Z / fx, as reproject
        np.divide(x, geometry.fx, out=x)
        np.multiply(self._v, z, out=y)
        np.divide(y, geometry.fy, out=y)
        planes = [x, y, z] + ([self._pack_colour(rgb)] if rgb is not None else [])
        buf = self._view
        merged = cv2.merge(planes, dst=buf)  # raw 4-byte copies: NaN payloads and colour bits kept
        if not np.shares_memory(merged, buf):  # OpenCV allocated instead of filling ours
            buf[...] = merged
        dtype = XYZRGB_DTYPE if fields == 4 else XYZ_DTYPE
        if organized:
            # x and y are finite wherever z is, unless (u - cx) * z overflows: check them only then
            is_dense = bool(np.isfinite(z).all()) and bool(np.isfinite(x).all() & np.isfinite(y).all())
            return CloudPayload(buf.view(dtype)[..., 0], h, w, is_dense, fields == 4, self._buffer)
        keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
        points = np.ascontiguousarray(buf[keep]).view(dtype)[:, 0]
        return CloudPayload(points, 1, int(points.shape[0]), True, fields == 4)


def build_cloud_reference(points: np.ndarray, rgb: np.ndarray | None = None,
                          organized: bool = True) -> bytes:
    """The same bytes as ``build_cloud(...).tobytes()``, one point at a time (slow, on purpose)."""
    h, w = points.shape[:2]
    out = bytearray()
    for v in range(h):
        for u in range(w):
            x, y, z = (float(points[v, u, k]) for k in range(3))
            if not organized and not (np.isfinite(x) and np.isfinite(y) and np.isfinite(z)):
                continue
            out += struct.pack("<fff", x, y, z)
            if rgb is not None:
                r, g, b = (int(rgb[v, u, k]) for k in range(3))
                out += struct.pack("<I", (r << 16) | (g << 8) | b)
    return bytes(out)


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None,
              binary: bool = True) -> int:
    """Write the finite points of (N, 3) ``xyz`` (+ (N, 3) uint8 colours) as PLY; returns the count.

    Binary little-endian by default; ``binary=False`` writes ASCII. Viewers (MeshLab,
    CloudCompare, Open3D) read both.
    """
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1)
    xyz = xyz[keep]
    colours = None if rgb is None else np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)[keep]
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
              "comment written by stereo_depth_ros", f"element vertex {len(xyz)}",
              "property float x", "property float y", "property float z"]
    if colours is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
            if colours is not None:
                fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
            rec = np.empty(len(xyz), dtype=fields)
            rec["x"], rec["y"], rec["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
            if colours is not None:
                rec["red"], rec["green"], rec["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
            fh.write(rec.tobytes())
        else:
            cols = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
            fmt = ["%.6g"] * 3
            if colours is not None:
                cols += [colours[:, 0], colours[:, 1], colours[:, 2]]
                fmt += ["%d"] * 3
            table = np.column_stack([c.astype(np.float64) for c in cols]) if len(xyz) else np.zeros((0, 3))
            np.savetxt(fh, table, fmt=fmt if len(xyz) else "%g")
    return len(xyz)


def write_ply_payload(path: str | Path, payload: CloudPayload, binary: bool = True) -> int:
    return write_ply(path, payload.xyz(), payload.rgb(), binary)


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY written by ``write_ply`` (vertex x, y, z [+ red, green, blue])."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    if lines[0] != "ply":
        raise ValueError(f"{path} is not a PLY file")
    fmt = next(ln.split()[1] for ln in lines if ln.startswith("format"))
    count = next(int(ln.split()[2]) for ln in lines if ln.startswith("element vertex"))
    props = [ln.split()[2] for ln in lines if ln.startswith("property")]
    has_rgb = "red" in props
    if fmt == "binary_little_endian":
        fields = [(p, "<f4" if p in "xyz" else "u1") for p in props]
        rec = np.frombuffer(data[end:], dtype=fields, count=count)
        xyz = np.stack([rec["x"], rec["y"], rec["z"]], axis=-1)
        rgb = np.stack([rec["red"], rec["green"], rec["blue"]], axis=-1) if has_rgb else None
    else:
        table = np.loadtxt(data[end:].decode("ascii").splitlines(), ndmin=2).reshape(count, len(props))
        xyz = table[:, :3].astype(np.float32)
        rgb = table[:, 3:6].astype(np.uint8) if has_rgb else None
    return xyz, rgb
