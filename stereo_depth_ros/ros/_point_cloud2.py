"""The package's own sensor_msgs_py.point_cloud2 equivalent (used when ROS's is absent).

Same call shapes: ``create_cloud(header, fields, points, point_step=None)``,
``create_cloud_xyz32(header, points)``, ``read_points(cloud, field_names=None, skip_nans=False,
uvs=None, reshape_organized_cloud=False)`` (a numpy structured array), ``read_points_numpy``,
``read_points_list`` and ``dtype_from_fields``. A 2-D structured array given to create_cloud
makes an organized cloud (height x width).
"""

from __future__ import annotations

import array
import sys
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


def dtype_from_fields(fields: Iterable[PointField], point_step: int | None = None) -> np.dtype:
    """The numpy structured dtype (names, offsets, itemsize) that the fields describe."""
    names, formats, offsets = [], [], []
    for i, f in enumerate(fields):
        if f.datatype not in _DATATYPES:
            raise ValueError(f"point field {f.name!r} has unknown datatype {f.datatype}")
        base = _DATATYPES[f.datatype]
        names.append(f.name or f"unnamed_field_{i}")
        formats.append(base if f.count == 1 else (base, (f.count,)))
        offsets.append(f.offset)
    spec: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = point_step
    return np.dtype(spec)


def create_cloud(header: Any, fields: Sequence[PointField], points: Any,
                 point_step: int | None = None) -> PointCloud2:
    """A PointCloud2 from a structured array, a plain (N, n_fields) array or a list of tuples."""
    dtype = dtype_from_fields(fields, point_step)
    if isinstance(points, np.ndarray) and points.dtype.names is not None:
        arr = points if points.dtype == dtype else _restructure(points, dtype)
    elif isinstance(points, np.ndarray):
        arr = np.zeros(points.shape[:-1], dtype=dtype)
        for i, name in enumerate(dtype.names):
            arr[name] = points[..., i]
    else:
        rows = [tuple(p) for p in points]
        arr = np.zeros(len(rows), dtype=dtype)
        for i, name in enumerate(dtype.names):
            arr[name] = [r[i] for r in rows]
    height, width = (arr.shape[0], arr.shape[1]) if arr.ndim == 2 else (1, arr.size)
    cloud = PointCloud2(header=header, height=height, width=width, is_dense=False,
                        is_bigendian=sys.byteorder != "little", fields=list(fields),
                        point_step=dtype.itemsize, row_step=dtype.itemsize * width)
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(arr).tobytes())
    cloud.data = data
    return cloud


def _restructure(points: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.zeros(points.shape, dtype=dtype)
    for name in dtype.names:
        out[name] = points[name]
    return out


def create_cloud_xyz32(header: Any, points: Any) -> PointCloud2:
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("xyz")]
    return create_cloud(header, fields, np.asarray(points, dtype=np.float32))


def read_points(cloud: PointCloud2, field_names: Sequence[str] | None = None, skip_nans: bool = False,
                uvs: Sequence[Any] | None = None, reshape_organized_cloud: bool = False) -> np.ndarray:
    """The cloud's points as a numpy structured array (only ``field_names`` when given)."""
    dtype = dtype_from_fields(cloud.fields, cloud.point_step)
    if bool(cloud.is_bigendian) != (sys.byteorder != "little"):
        dtype = dtype.newbyteorder()
    raw = np.frombuffer(cloud.data, dtype=np.uint8)
    rows = raw.reshape(cloud.height, cloud.row_step)[:, : cloud.width * cloud.point_step]
    points = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    if field_names is not None:
        points = _restructure(points, np.dtype([(n, dtype.fields[n][0]) for n in field_names]))
    if uvs is not None:
        index = [int(v) * cloud.width + int(u) for u, v in uvs]
        points = points[index]
    if skip_nans:
        keep = np.ones(points.shape, dtype=bool)
        for name in points.dtype.names:
            values = points[name]
            if np.issubdtype(values.dtype, np.floating):
                keep &= ~np.isnan(values).reshape(len(values), -1).any(axis=1)
        points = points[keep]
    if reshape_organized_cloud and cloud.height > 1 and not skip_nans and uvs is None:
        points = points.reshape(cloud.height, cloud.width)
    return points


def read_points_numpy(cloud: PointCloud2, field_names: Sequence[str] | None = None,
                      skip_nans: bool = False, uvs: Sequence[Any] | None = None,
                      reshape_organized_cloud: bool = False) -> np.ndarray:
    """Like read_points but an unstructured (N, n_fields) array; the fields must share a type."""
    points = read_points(cloud, field_names, skip_nans, uvs, reshape_organized_cloud)
    types = {points.dtype.fields[n][0] for n in points.dtype.names}
    if len(types) != 1:
        raise AssertionError("read_points_numpy needs fields of one datatype")
    return np.stack([points[n] for n in points.dtype.names], axis=-1)


def read_points_list(cloud: PointCloud2, field_names: Sequence[str] | None = None,
                     skip_nans: bool = False, uvs: Sequence[Any] | None = None) -> list[tuple]:
    return [tuple(p) for p in read_points(cloud, field_names, skip_nans, uvs).tolist()]
