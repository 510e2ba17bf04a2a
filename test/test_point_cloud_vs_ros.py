"""The package's point-cloud helpers next to the real sensor_msgs_py.point_cloud2 (5.4.2), on
generated fields and points: every datatype, count > 1, unnamed fields, padding inside and
after a point, NaN and inf, organized and unorganized clouds, big-endian data, padded rows.
Where they differ, the PointCloud2 message definition decides (docs/sync.md); the tests check
the package against the definition and state the real library's behaviour. Skipped where
../shared (the reference wheels) is absent."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ros_reference import loaded
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from stereo_depth_ros.ros import _point_cloud2 as own

CLOUDS = settings(max_examples=300, deadline=None, database=None)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TYPES = [PointField.INT8, PointField.UINT8, PointField.INT16, PointField.UINT16, PointField.INT32,
         PointField.UINT32, PointField.FLOAT32, PointField.FLOAT64]
NAMES = ["x", "y", "z", "rgb", "intensity", "ring", "t", "normal"]


@pytest.fixture(scope="module")
def ros():
    with loaded() as modules:
        yield modules.point_cloud2


@dataclass
class Case:
    fields: list[PointField]
    point_step: int
    points: np.ndarray          # structured, the package's dtype; (N,) or (H, W)
    nan_share: float


@st.composite
def cases(draw, organized=None, single_type=False):
    n_fields = draw(st.integers(1, 5))
    names = draw(st.permutations(NAMES))[:n_fields]
    if draw(st.booleans()):
        names[draw(st.integers(0, n_fields - 1))] = ""     # an unnamed field
    datatype = draw(st.sampled_from(TYPES))
    fields, offset = [], 0
    for name in names:
        dt = datatype if single_type else draw(st.sampled_from(TYPES))
        count = draw(st.sampled_from([1, 1, 1, 2, 3]))
        offset += draw(st.sampled_from([0, 0, 1, 4]))       # padding before the field
        fields.append(PointField(name=name, offset=offset, datatype=dt, count=count))
        offset += count * own._DATATYPES[dt].itemsize
    point_step = offset + draw(st.sampled_from([0, 0, 3, 8]))
    dtype = own.dtype_from_fields(fields, point_step)
    is_organized = draw(st.booleans()) if organized is None else organized
    shape = ((draw(st.integers(2, 5)), draw(st.integers(1, 6))) if is_organized
             else (draw(st.integers(0, 30)),))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nan_share = draw(st.sampled_from([0.0, 0.0, 0.2, 0.7]))
    points = np.zeros(shape, dtype=dtype)
    for name in dtype.names:
        kind = dtype.fields[name][0]
        if np.issubdtype(kind, np.floating):
            values = rng.normal(0, 100, shape).astype(kind)
            values[rng.random(shape) < nan_share] = np.nan
            values[rng.random(shape) < 0.05] = np.inf
        else:
            info = np.iinfo(kind)
            values = rng.integers(info.min, info.max, shape, endpoint=True, dtype=kind)
        points[name] = values
    return Case(fields, point_step, points, nan_share)


def same_points(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype.names == b.dtype.names
    assert a.shape == b.shape
    for name in a.dtype.names:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # NaN equals NaN here


def header() -> Header:
    return Header(frame_id="cam")


def point_at(cloud: PointCloud2, u: int, v: int) -> np.ndarray:
    """Point (u, v) read straight from the bytes, as the message definition places it."""
    dtype = own.dtype_from_fields(cloud.fields, cloud.point_step)
    if cloud.is_bigendian != (sys.byteorder == "big"):
        dtype = dtype.newbyteorder()
    start = v * cloud.row_step + u * cloud.point_step
    return np.frombuffer(bytes(cloud.data[start:start + cloud.point_step]), dtype=dtype)[0]


@CLOUDS
@given(cases())
def test_dtype_and_flat_clouds_as_ros(ros, case):
    assert own.dtype_from_fields(case.fields, case.point_step) == ros.dtype_from_fields(case.fields,
                                                                                      case.point_step)
    flat = case.points.reshape(-1)
    step = case.point_step
    mine = own.create_cloud(header(), case.fields, flat, step)
    theirs = ros.create_cloud(header(), case.fields, flat, step)
    for key in ("header", "height", "width", "fields", "is_bigendian", "point_step", "row_step", "is_dense"):
        assert getattr(mine, key) == getattr(theirs, key), key
    assert bytes(mine.data) == bytes(theirs.data)
    from_tuples = own.create_cloud(header(), case.fields, flat.tolist(), step)
    same_points(own.read_points(from_tuples),
                ros.read_points(ros.create_cloud(header(), case.fields, flat.tolist(), step)))


@CLOUDS
@given(cases(), st.data())
def test_read_points_as_ros(ros, case, data):
    cloud = own.create_cloud(header(), case.fields, case.points, case.point_step)
    names = list(case.points.dtype.names)
    subset = data.draw(st.one_of(st.none(), st.lists(st.sampled_from(names), min_size=1, unique=True)))
    for skip in (False, True):
        same_points(own.read_points(cloud, subset, skip_nans=skip),
                    ros.read_points(copy.deepcopy(cloud), subset, skip_nans=skip))
    n = case.points.size
    if n:
        flat = data.draw(st.lists(st.integers(0, n - 1), max_size=10))
        same_points(own.read_points(cloud, subset, uvs=flat),
                    ros.read_points(copy.deepcopy(cloud), subset, uvs=flat))
        # sensor_msgs_py picks uvs among the points left after skipping NaN ones (the indices
        # then name other points); the package picks them first, then skips NaN points
        after = own.read_points(cloud, subset, skip_nans=True)
        picked = [i for i in flat if i < after.size]
        same_points(after[picked], ros.read_points(copy.deepcopy(cloud), subset, skip_nans=True, uvs=picked))
        first = own.read_points(cloud, subset)[flat]
        keep = np.ones(first.shape, bool)
        for name in first.dtype.names:
            if np.issubdtype(first[name].dtype, np.floating):
                keep &= ~np.isnan(first[name])
        same_points(own.read_points(cloud, subset, skip_nans=True, uvs=flat), first[keep])
    one_type = len({case.points.dtype.fields[n][0] for n in subset or names}) == 1
    if one_type and all(f.name for f in case.fields):
        mine = own.read_points_numpy(cloud, subset)
        try:
            np.testing.assert_array_equal(mine, ros.read_points_numpy(copy.deepcopy(cloud), subset))
        except AssertionError as exc:
            # sensor_msgs_py compares the selected fields' type with the cloud's first field's
            # even when that one is not selected, and refuses: the package reads them
            assert "same datatype" in str(exc) and case.fields[0].name not in subset
            np.testing.assert_array_equal(mine, np.stack([own.read_points(cloud)[n] for n in subset], -1))
    if subset is not None or all(f.count == 1 and f.name for f in case.fields):
        mine, theirs = own.read_points_list(cloud, subset), ros.read_points_list(copy.deepcopy(cloud), subset)
        assert [p._fields for p in mine] == [p._fields for p in theirs]
        for a, b in zip(mine, theirs, strict=True):
            assert [type(x) for x in a] == [type(y) for y in b]
            assert all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))  # NaN is NaN


@CLOUDS
@given(cases(organized=True))
def test_organized_clouds_follow_the_message_not_ros(ros, case):
    """PointCloud2 rows are ``height`` rows of ``width`` points: an (H, W) array. The package
    writes and reads that; sensor_msgs_py takes the array's first axis as the width and
    reshapes to (width, height) (ros2/common_interfaces#236, open): same bytes, axes named
    the other way round, and point (u, v) is not at [v, u]."""
    h, w = case.points.shape
    mine = own.create_cloud(header(), case.fields, case.points, case.point_step)
    theirs = ros.create_cloud(header(), case.fields, case.points, case.point_step)
    assert (mine.height, mine.width, mine.row_step) == (h, w, w * mine.point_step)
    assert (theirs.height, theirs.width) == (w, h)
    assert bytes(mine.data) == bytes(theirs.data)
    back = own.read_points(mine, reshape_organized_cloud=True)
    same_points(back, case.points)
    for v, u in [(0, 0), (h - 1, w - 1), (h // 2, w // 2)]:
        same_points(np.array([back[v, u]]), np.array([point_at(mine, u, v)]))
    # sensor_msgs_py's own round trip holds in its (width, height) convention, except for a
    # single column: its cloud then has height 1 and comes back flat
    same_points(ros.read_points(theirs, reshape_organized_cloud=True),
                case.points if w > 1 else case.points[:, 0])
    same_points(ros.read_points(copy.deepcopy(mine), reshape_organized_cloud=True),
                case.points.reshape(-1).reshape(w, h))


@CLOUDS
@given(cases(), st.integers(1, 9))
def test_padded_rows_and_big_endian_clouds(ros, case, pad):
    """A cloud from another machine: big-endian, rows padded beyond width x point_step. The
    package reads every point where the message puts it and leaves the message unchanged;
    sensor_msgs_py ignores row_step, and byte-swaps the message's data in place."""
    points = case.points if case.points.ndim == 2 else case.points.reshape(1, -1)
    h, w = points.shape
    big = points.astype(points.dtype.newbyteorder(">"))
    step = case.point_step
    rows = np.zeros((h, w * step + pad), np.uint8)
    rows[:, :w * step] = np.frombuffer(big.tobytes(), np.uint8).reshape(h, w * step)
    cloud = PointCloud2(header=header(), height=h, width=w, fields=case.fields, is_bigendian=True,
                        point_step=step, row_step=w * step + pad, is_dense=False)
    cloud.data = rows.tobytes()
    before = bytes(cloud.data)
    same_points(own.read_points(cloud), points.reshape(-1))
    same_points(own.read_points(cloud, reshape_organized_cloud=True), points if h > 1 else points.reshape(-1))
    assert bytes(cloud.data) == before                    # reading does not modify the message
    if h == 1 and any(own._DATATYPES[f.datatype].itemsize > 1 for f in case.fields) and w:
        theirs = copy.deepcopy(cloud)
        same_points(ros.read_points(theirs), points.reshape(-1))   # one row: padding does not matter
        assert bytes(theirs.data) != before               # ... but its data were swapped in place
    if h > 1 and w:
        with_padding = copy.deepcopy(cloud)
        try:
            wrong = ros.read_points(with_padding)
        except TypeError:                                 # "buffer is too small": also refused
            return
        assert not np.array_equal(wrong.view(np.uint8), own.read_points(cloud).view(np.uint8))


def test_skip_nans_on_a_cloud_that_claims_to_be_dense(ros):
    """``is_dense`` says there is no invalid point; sensor_msgs_py then skips nothing. The
    package's skip_nans returns no NaN point whatever the cloud claims."""
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate("xyz")]
    cloud = own.create_cloud(header(), fields, [(1.0, 2.0, 3.0), (np.nan, 0.0, 0.0)])
    cloud.is_dense = True
    assert len(ros.read_points(copy.deepcopy(cloud), skip_nans=True)) == 2
    assert own.read_points(cloud, skip_nans=True)["x"].tolist() == [1.0]


def test_read_points_list_names_fields_with_count(ros):
    """A field with count 3 is read as rgb_0..rgb_2 by both; sensor_msgs_py's read_points_list
    asks for the field by its message name and fails, the package's names the subfields."""
    fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name="rgb", offset=4, datatype=PointField.UINT8, count=3)]
    cloud = own.create_cloud(header(), fields, [(1.0, 10, 20, 30)])
    with pytest.raises(AssertionError):
        ros.read_points_list(copy.deepcopy(cloud))
    (p,) = own.read_points_list(cloud)
    assert (p.x, p.rgb_0, p.rgb_1, p.rgb_2) == (1.0, 10, 20, 30)


def test_xyz32_and_pixel_uvs(ros):
    pts = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0], [9.0, 10.0, 11.0]], np.float32)
    mine, theirs = own.create_cloud_xyz32(header(), pts), ros.create_cloud_xyz32(header(), pts)
    assert (mine.fields, mine.point_step) == (theirs.fields, theirs.point_step)
    assert bytes(mine.data) == bytes(theirs.data)
    organized = own.create_cloud_xyz32(header(), pts.reshape(2, 2, 3))
    # (u, v) pairs as ROS 1 took them and the docstring says; flat indices as sensor_msgs_py 5 does
    assert own.read_points(organized, uvs=[(1, 0), (0, 1)])["x"].tolist() == [3.0, 6.0]
    assert own.read_points(organized, uvs=[1, 2])["x"].tolist() == [3.0, 6.0]
    with pytest.raises((TypeError, ValueError)):
        ros.read_points(copy.deepcopy(organized), uvs=[(1, 0)])
