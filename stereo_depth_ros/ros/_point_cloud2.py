"""The package's own sensor_msgs_py.point_cloud2 equivalent (used when ROS's is absent).

Same call shapes and field naming as sensor_msgs_py 5.x: ``create_cloud(header, fields,
points, point_step=None)``, ``create_cloud_xyz32(header, points)``, ``read_points(cloud,
field_names=None, skip_nans=False, uvs=None, reshape_organized_cloud=False)`` (a numpy
structured array), ``read_points_numpy``, ``read_points_list`` (namedtuples) and
``dtype_from_fields``; a field with ``count`` > 1 becomes scalar fields ``name_0`` ...
``name_{count-1}``, an unnamed one ``unnamed_field_<i>``.

Where sensor_msgs_py gets the message wrong this module follows sensor_msgs/PointCloud2 (see
docs/sync.md): an organized cloud is an (height, width) array (sensor_msgs_py reads and
writes (width, height)); rows padded beyond width x point_step (``row_step``) are read
correctly; reading never modifies the message (sensor_msgs_py byte-swaps a big-endian cloud's
data in place); ``uvs`` are (u, v) pixel coordinates or flat indices, selected before NaN
points are skipped; ``skip_nans`` also skips NaN points of a cloud that claims ``is_dense``.
"""

from __future__ import annotations

import array
import sys
from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

_DATATYPES = {
    PointField.INT8: np.dtype(np.int8), PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16), PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32), PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32), PointField.FLOAT64: np.dtype(np.float64),
}
DUMMY_FIELD_PREFIX = "unnamed_field"


def dtype_from_fields(fields: Iterable[PointField], point_step: int | None = None) -> np.dtype:
    """The numpy structured dtype (names, offsets, itemsize) that the fields describe."""
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    for i, f in enumerate(fields):
        if f.datatype not in _DATATYPES:
            raise ValueError(f"point field {f.name!r} has unknown datatype {f.datatype}")
        if f.count < 1:
            raise ValueError(f"point field {f.name!r} has count {f.count}: at least 1 is needed")
        base = _DATATYPES[f.datatype]
        name = f.name or f"{DUMMY_FIELD_PREFIX}_{i}"
        for a in range(f.count):
            sub = f"{name}_{a}" if f.count > 1 else name
            if sub in names:
                raise ValueError(f"point field name {sub!r} appears twice")
            names.append(sub)
            formats.append(base)
            offsets.append(f.offset + a * base.itemsize)
    spec: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = point_step
    try:
        return np.dtype(spec)
    except ValueError as exc:  # overlapping fields or a point_step too small for them
        raise ValueError(f"point fields do not fit a point of {point_step} bytes: {exc}") from None


def create_cloud(header: Any, fields: Sequence[PointField], points: Any,
                 point_step: int | None = None) -> PointCloud2:
    """A PointCloud2 from a structured array, a plain (..., n_values) array or a sequence of
    tuples (one value per field, per element of a field with count > 1). A 2-D array of
    points (height x width) makes an organized cloud."""
    dtype = dtype_from_fields(fields, point_step)
    if isinstance(points, np.ndarray) and points.dtype.names is not None:
        arr = points if points.dtype == dtype else _restructure(points, dtype)
    elif isinstance(points, np.ndarray):
        if points.ndim < 1 or points.shape[-1] != len(dtype.names):
            raise ValueError(f"points of shape {points.shape} do not give {len(dtype.names)} values "
                             f"({', '.join(dtype.names)}) per point")
        arr = np.zeros(points.shape[:-1], dtype=dtype)
        for i, name in enumerate(dtype.names):
            arr[name] = points[..., i]
    else:
        arr = np.array([tuple(p) for p in points], dtype=dtype)
    if arr.ndim > 2:
        raise ValueError(f"points of shape {arr.shape}: at most 2 dimensions (height x width)")
    height, width = (arr.shape[0], arr.shape[1]) if arr.ndim == 2 else (1, arr.size)
    cloud = PointCloud2(header=header, height=height, width=width, is_dense=False,
                        is_bigendian=sys.byteorder != "little", fields=list(fields),
                        point_step=dtype.itemsize, row_step=dtype.itemsize * width)
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(arr).tobytes())
    cloud.data = data
    return cloud


def _restructure(points: np.ndarray, dtype: np.dtype) -> np.ndarray:
    missing = [n for n in dtype.names if n not in points.dtype.names]
    if missing:
        raise ValueError(f"points have no field {missing[0]!r} (they have {', '.join(points.dtype.names)})")
    out = np.zeros(points.shape, dtype=dtype)
    for name in dtype.names:
        out[name] = points[name]
    return out


def create_cloud_xyz32(header: Any, points: Any) -> PointCloud2:
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("xyz")]
    return create_cloud(header, fields, np.asarray(points, dtype=np.float32))


def _all_points(cloud: PointCloud2) -> np.ndarray:
    """Every point, in native byte order, read where row_step puts each row (a copy)."""
    native = dtype_from_fields(cloud.fields, cloud.point_step)
    stored = native.newbyteorder() if bool(cloud.is_bigendian) != (sys.byteorder != "little") else native
    height, width, step = int(cloud.height), int(cloud.width), int(cloud.point_step)
    row_step = int(cloud.row_step) or width * step
    if height * width == 0:
        return np.zeros(0, dtype=native)
    if row_step < width * step:
        raise ValueError(f"cloud row_step {row_step} is smaller than width x point_step = {width} x {step}")
    raw = np.frombuffer(cloud.data, dtype=np.uint8)
    if raw.size < (height - 1) * row_step + width * step:
        raise ValueError(f"cloud data has {raw.size} bytes, {height} rows of {row_step} need "
                         f"{(height - 1) * row_step + width * step}")
    rows = np.lib.stride_tricks.as_strided(raw, (height, width * step), (row_step, 1))
    points = np.ascontiguousarray(rows).view(stored).reshape(-1)
    return points if stored is native else points.astype(native)


def _select(points: np.ndarray, uvs: Any, width: int) -> np.ndarray:
    index = np.asarray(uvs if isinstance(uvs, np.ndarray) else list(uvs), dtype=np.int64)
    if index.ndim == 2 and index.shape[1] == 2:  # (u, v) pixel coordinates
        index = index[:, 1] * width + index[:, 0]
    elif index.ndim != 1:
        raise ValueError(f"uvs must be flat point indices or (u, v) pairs, got shape {index.shape}")
    return points[index.reshape(-1)]


def read_points(cloud: PointCloud2, field_names: Sequence[str] | None = None, skip_nans: bool = False,
                uvs: Iterable[Any] | None = None, reshape_organized_cloud: bool = False) -> np.ndarray:
    """The cloud's points as a numpy structured array (only ``field_names`` when given)."""
    points = _all_points(cloud)
    if field_names is not None:
        names = list(field_names)
        missing = [n for n in names if n not in points.dtype.names]
        if missing:
            raise ValueError(f"cloud has no field {missing[0]!r} (it has {', '.join(points.dtype.names)})")
        points = _restructure(points, np.dtype([(n, points.dtype.fields[n][0]) for n in names]))
    if uvs is not None:
        points = _select(points, uvs, int(cloud.width))
    if skip_nans:
        keep = np.ones(points.shape, dtype=bool)
        for name in points.dtype.names:
            values = points[name]
            if np.issubdtype(values.dtype, np.floating):
                keep &= ~np.isnan(values)
        points = points[keep]
    if reshape_organized_cloud and cloud.height > 1 and not skip_nans and uvs is None:
        points = points.reshape(cloud.height, cloud.width)
    return points


def read_points_numpy(cloud: PointCloud2, field_names: Sequence[str] | None = None,
                      skip_nans: bool = False, uvs: Iterable[Any] | None = None,
                      reshape_organized_cloud: bool = False) -> np.ndarray:
    """Like read_points but an unstructured (..., n_fields) array; the fields must share a type."""
    points = read_points(cloud, field_names, skip_nans, uvs, reshape_organized_cloud)
    types = {points.dtype.fields[n][0] for n in points.dtype.names}
    if len(types) != 1:
        raise ValueError("read_points_numpy needs fields of one datatype (use read_points): "
                         + ", ".join(f"{n}: {points.dtype.fields[n][0]}" for n in points.dtype.names))
    return np.stack([points[n] for n in points.dtype.names], axis=-1)


def read_points_list(cloud: PointCloud2, field_names: Sequence[str] | None = None,
                     skip_nans: bool = False, uvs: Iterable[Any] | None = None) -> list[tuple]:
    """The points as namedtuples ``Point`` (numpy scalars) with one attribute per field."""
    points = read_points(cloud, field_names, skip_nans, uvs)
    point = namedtuple("Point", points.dtype.names, rename=True)
    return [point._make(p) for p in points]
