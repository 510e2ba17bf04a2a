"""rosbag2 files (sqlite3 and MCAP) read and written with ``rosbags``; no rclpy.

- :class:`BagWriter` writes sensor_msgs/Image, CameraInfo, stereo_msgs/DisparityImage (any
  type of the ROS 2 typestore) with the connection added on first use.
- :func:`open_bag` opens a bag and turns every failure (missing, empty, truncated, corrupt)
  into a :class:`BagError` whose message names the file.
- :func:`stereo_frames` pairs left/right images, their camera_info and optional extra topics
  (ground truth) by header stamp, streaming: it never holds more than the messages of the
  frames still being assembled.
- numpy conversions for the deserialized messages (``image_to_numpy``, ``numpy_to_image``, ...).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # geometry imports torch; replaying a bag must not pay for that
    from stereo_depth_ros.geometry import StereoGeometry

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DISPARITY = "stereo_msgs/msg/DisparityImage"
CLOCK = "rosgraph_msgs/msg/Clock"

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "8UC1": ("u1", 1), "8UC3": ("u1", 3), "mono16": ("u2", 1),
    "16UC1": ("u2", 1), "32FC1": ("f4", 1), "64FC1": ("f8", 1),
}


class BagError(RuntimeError):
    """A bag that cannot be read or written; the message names the file and the reason."""


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 (Kilted) message types of ``rosbags``; the wire format is the same for
    Humble, Jazzy and Kilted for every type used here."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def msg_class(msgtype: str):
    return typestore().types[msgtype]


# --------------------------------------------------------------------------- messages

def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str):
    return msg_class("std_msgs/msg/Header")(stamp=time_msg(stamp_ns), frame_id=frame_id)


def numpy_to_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """(H, W[, C]) array -> sensor_msgs/Image (little endian, dense rows)."""
    if encoding not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    dtype, channels = _ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ValueError(f"array of shape {array.shape} does not fit encoding {encoding}")
    h, w = array.shape[:2]
    return msg_class(IMAGE)(header=header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                            is_bigendian=0, step=w * channels * array.itemsize,
                            data=array.reshape(-1).view(np.uint8))


def image_to_numpy(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) or (H, W, C) array in the message's own channel order."""
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    dtype, channels = _ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dt.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row_bytes or data.size < msg.step * msg.height:
        raise ValueError(f"image data too short: {data.size} bytes for {msg.height} rows of "
                         f"step {msg.step} ({msg.width}x{msg.height} {msg.encoding})")
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    out = np.ascontiguousarray(rows).view(dt).astype(dt.newbyteorder("="))
    out = out.reshape(msg.height, msg.width, channels)
    return out[:, :, 0] if channels == 1 else out


def image_to_rgb(msg: Any) -> np.ndarray:
    """Any colour or mono 8-bit image message -> (H, W, 3) uint8 RGB."""
    img = image_to_numpy(msg)
    enc = msg.encoding
    if enc in ("bgr8", "8UC3"):
        return np.ascontiguousarray(img[:, :, ::-1])
    if enc == "bgra8":
        return np.ascontiguousarray(img[:, :, 2::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(img[:, :, :3])
    if enc == "rgb8":
        return img
    if img.dtype == np.uint8 and img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    raise ValueError(f"image encoding {enc!r} is not a colour or mono8 image")


def float_image(msg: Any) -> np.ndarray:
    """32FC1/64FC1 image (or 16UC1 depth in mm, REP 118) -> float32 array, NaN for no value."""
    img = image_to_numpy(msg)
    if msg.encoding in ("16UC1", "mono16"):
        out = img.astype(np.float32) / 1000.0
        out[img == 0] = np.nan
        return out
    if img.ndim != 2:
        raise ValueError(f"expected a single-channel image, got encoding {msg.encoding!r}")
    return img.astype(np.float32)


def camera_info(geometry: StereoGeometry, right: bool, stamp_ns: int, frame_id: str):
    """sensor_msgs/CameraInfo of one rectified camera of ``geometry`` (plumb_bob, zero D)."""
    g = geometry
    cx = g.cx_right if right else g.cx
    k = np.array([g.fx, 0.0, cx, 0.0, g.fy, g.cy, 0.0, 0.0, 1.0])
    p = np.array([g.fx, 0.0, cx, -g.fx * g.baseline if right else 0.0,
                  0.0, g.fy, g.cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    roi = msg_class("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0,
                                                        do_rectify=False)
    return msg_class(CAMERA_INFO)(header=header(stamp_ns, frame_id), height=g.height, width=g.width,
                                  distortion_model="plumb_bob", d=np.zeros(5), k=k,
                                  r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0, roi=roi)


def geometry_from_infos(left_info: Any, right_info: Any, baseline: float | None = None) -> StereoGeometry:
    """Stereo geometry from the two CameraInfo P matrices (baseline override for AirSim-like
    sources that leave P_right[3] at 0)."""
    from stereo_depth_ros.geometry import StereoGeometry

    return StereoGeometry.from_projections(list(left_info.p), list(right_info.p), int(left_info.width),
                                           int(left_info.height), baseline)


def disparity_image(disparity: np.ndarray, geometry: StereoGeometry, stamp_ns: int, frame_id: str,
                    min_disparity: float = 0.0, max_disparity: float = 0.0, delta_d: float = 1.0 / 16,
                    valid_window: tuple[int, int, int, int] | None = None):
    """stereo_msgs/DisparityImage around a (H, W) float disparity (NaN for invalid)."""
    h, w = disparity.shape
    x, y, ww, hh = valid_window or (0, 0, w, h)
    roi = msg_class("sensor_msgs/msg/RegionOfInterest")(x_offset=x, y_offset=y, height=hh, width=ww,
                                                        do_rectify=False)
    image = numpy_to_image(disparity.astype(np.float32), "32FC1", stamp_ns, frame_id)
    return msg_class(DISPARITY)(header=header(stamp_ns, frame_id), image=image,
                                f=float(geometry.fx), t=float(geometry.baseline), valid_window=roi,
                                min_disparity=float(min_disparity), max_disparity=float(max_disparity),
                                delta_d=float(delta_d))


def time_msg(stamp_ns: int):
    Time = msg_class("builtin_interfaces/msg/Time")
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def clock_msg(stamp_ns: int):
    return msg_class(CLOCK)(clock=time_msg(stamp_ns))


# --------------------------------------------------------------------------- writing

class BagWriter:
    """Writes a new rosbag2 directory; ``storage`` is ``sqlite3`` or ``mcap``.

    >>> with BagWriter("out_bag") as bag:
    ...     bag.write("/left/image_rect", image_msg, t_ns)
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        from rosbags.rosbag2 import StoragePlugin

        plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
        if storage not in plugins:
            raise BagError(f"unknown bag storage {storage!r}: use sqlite3 or mcap")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; a bag is never overwritten, choose another --out")
        self._plugin = plugins[storage]
        self._writer = None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def open(self) -> BagWriter:
        from rosbags.rosbag2 import Writer

        self._writer = Writer(self.path, version=9, storage_plugin=self._plugin)
        try:
            self._writer.open()
        except Exception as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from exc
        return self

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        if self._writer is None:
            raise BagError(f"bag {self.path} is not open")
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msg.__msgtype__, typestore=typestore())
            self._connections[topic] = conn
        self._writer.write(conn, int(timestamp_ns), typestore().serialize_cdr(msg, msg.__msgtype__))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()


# --------------------------------------------------------------------------- reading

@dataclass
class TopicInfo:
    msgtype: str
    count: int


class Bag:
    """An open rosbag2 for reading; use :func:`open_bag`. Errors name the file."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{self.path} is not a rosbag2 directory (no metadata.yaml)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:
            raise BagError(f"cannot open bag {self.path}: {type(exc).__name__}: {exc}") from exc
        self.topics: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            info = self.topics.setdefault(conn.topic, TopicInfo(conn.msgtype, 0))
            info.count += conn.msgcount
        if not self.topics or self._reader.message_count == 0:
            self.close()
            raise BagError(f"bag {self.path} is empty (no messages)")

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def duration_ns(self) -> int:
        return int(self._reader.duration)

    def resolve(self, name: str, required: bool = True) -> str | None:
        """Topic of this bag for ``name``: exact, or the unique topic ending in ``/name``
        (so ``left/image_rect`` finds ``/stereo/left/image_rect``)."""
        candidates = [name, "/" + name.lstrip("/")]
        for cand in candidates:
            if cand in self.topics:
                return cand
        suffix = "/" + name.strip("/")
        matches = sorted(t for t in self.topics if t.endswith(suffix))
        if len(matches) == 1:
            return matches[0]
        if not required:
            return None
        if matches:
            raise BagError(f"bag {self.path}: topic {name!r} is ambiguous: {', '.join(matches)}")
        raise BagError(f"bag {self.path} has no topic {name!r}; it has: {', '.join(sorted(self.topics))}")

    def raw_messages(self, topics: Sequence[str] | None = None) -> Iterator[tuple[str, int, bytes]]:
        """(topic, log time ns, CDR bytes) in log-time order."""
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not conns:
            return
        try:
            for conn, t, raw in self._reader.messages(connections=conns):
                yield conn.topic, int(t), bytes(raw)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"bag {self.path} is corrupt or truncated: {type(exc).__name__}: {exc}") from exc

    def deserialize(self, topic: str, raw: bytes) -> Any:
        msgtype = self.topics[topic].msgtype
        try:
            return typestore().deserialize_cdr(raw, msgtype)
        except Exception as exc:
            raise BagError(f"bag {self.path}: a {msgtype} message on {topic} cannot be decoded: "
                           f"{exc}") from exc

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        for topic, t, raw in self.raw_messages(topics):
            yield topic, t, self.deserialize(topic, raw)

    def close(self) -> None:
        if getattr(self, "_reader", None) is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_bag(path: str | Path) -> Bag:
    return Bag(path)


def header_stamp_ns(raw: bytes) -> int:
    """Header stamp of a serialized message whose first field is std_msgs/Header (Image,
    CameraInfo, DisparityImage, ...), read from the CDR bytes without decoding the rest."""
    if len(raw) < 12:
        raise ValueError("message too short to hold a header")
    endian = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(endian + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


# --------------------------------------------------------------------------- stereo pairing

@dataclass
class StereoTopics:
    """Topic names (relative names resolve by suffix, see :meth:`Bag.resolve`)."""

    left: str = "left/image_rect"
    right: str = "right/image_rect"
    left_info: str = "left/camera_info"
    right_info: str = "right/camera_info"


@dataclass
class StereoFrame:
    stamp_ns: int
    left: Any
    right: Any
    left_info: Any
    right_info: Any
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairingStats:
    left_images: int = 0
    right_images: int = 0
    paired: int = 0
    unpaired_left: list[int] = field(default_factory=list)
    missing_extra: dict[str, int] = field(default_factory=dict)
    # (left stamp of a frame lost, why): a message it needed could not be decoded
    undecodable: list[tuple[int, str]] = field(default_factory=list)


def _nearest(stamps: list[int], t: int, tolerance_ns: int) -> int | None:
    i = bisect.bisect_left(stamps, t)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(stamps) and abs(stamps[j] - t) <= tolerance_ns:
            if best is None or abs(stamps[j] - t) < abs(best - t):
                best = stamps[j]
    return best


def stereo_frames(bag: Bag, topics: StereoTopics | None = None, extras: dict[str, str] | None = None,
                  tolerance_ns: int = 0, limit: int | None = None,
                  stats: PairingStats | None = None) -> Iterator[StereoFrame]:
    """Stereo frames of ``bag`` paired by header stamp.

    Left and right images pair when their stamps differ by at most ``tolerance_ns`` (0: exact
    time). Camera infos pair by exact stamp when they exist at that stamp, else the nearest one
    (infos rarely change). ``extras`` (role -> topic, e.g. ``{"gt": "ground_truth/disparity"}``)
    attach by stamp within the same tolerance; a frame without one still comes, without it.
    Unpaired left images are counted in ``stats``.
    """
    topics = topics or StereoTopics()
    stats = stats if stats is not None else PairingStats()
    role_topic = {
        "left": bag.resolve(topics.left), "right": bag.resolve(topics.right),
        "left_info": bag.resolve(topics.left_info), "right_info": bag.resolve(topics.right_info),
    }
    for role, name in (extras or {}).items():
        resolved = bag.resolve(name, required=False)
        if resolved is not None:
            role_topic[role] = resolved
    wanted = set(role_topic.values())

    # Pass 1: header stamps only (read from the raw bytes), to plan which messages make a frame.
    stamps: dict[str, list[int]] = {t: [] for t in wanted}
    for topic, _, raw in bag.raw_messages(list(wanted)):
        try:
            stamps[topic].append(header_stamp_ns(raw))
        except ValueError:
            continue
    for t in stamps:
        stamps[t].sort()
    stats.left_images = len(stamps[role_topic["left"]])
    stats.right_images = len(stamps[role_topic["right"]])

    plans: list[tuple[int, dict[str, tuple[str, int]]]] = []
    for t in stamps[role_topic["left"]]:
        parts: dict[str, tuple[str, int]] = {"left": (role_topic["left"], t)}
        ok = True
        for role, topic in role_topic.items():
            if role == "left":
                continue
            is_info = role in ("left_info", "right_info")
            match = _nearest(stamps[topic], t, 2**62 if is_info else tolerance_ns)
            if match is None:
                if role in ("right", "left_info", "right_info"):
                    ok = False
                    break
                stats.missing_extra[role] = stats.missing_extra.get(role, 0) + 1
                continue
            parts[role] = (topic, match)
        if ok:
            plans.append((t, parts))
        else:
            stats.unpaired_left.append(t)
    if limit is not None:
        plans = plans[:limit]
    if not plans:
        return

    # Pass 2: stream, keep only the messages a pending frame needs, emit frames as they complete.
    waiting: dict[tuple[str, int], list[int]] = {}
    for i, (_, parts) in enumerate(plans):
        for key in set(parts.values()):
            waiting.setdefault(key, []).append(i)
    users = {key: len(idx) for key, idx in waiting.items()}
    missing = [len(set(parts.values())) for _, parts in plans]
    have: dict[tuple[str, int], Any] = {}
    dead: set[int] = set()
    done = 0
    for topic, _, raw in bag.raw_messages(list(wanted)):
        try:
            key = (topic, header_stamp_ns(raw))
        except ValueError:
            continue
        if key not in waiting or key in have or users[key] == 0:
            continue
        try:
            have[key] = bag.deserialize(topic, raw)
        except BagError as exc:  # one bad message loses its frames, not the rest of the bag
            for i in waiting[key]:
                if i in dead:
                    continue
                dead.add(i)
                done += 1
                stats.undecodable.append((plans[i][0], str(exc)))
                for k in set(plans[i][1].values()):  # release what the lost frame held
                    users[k] -= 1
                    if users[k] == 0:
                        have.pop(k, None)
            if done == len(plans):
                break
            continue
        for i in waiting[key]:
            if i in dead:
                continue
            missing[i] -= 1
            if missing[i]:
                continue
            t, parts = plans[i]
            msgs = {role: have[k] for role, k in parts.items()}
            for k in set(parts.values()):
                users[k] -= 1
                if users[k] == 0:
                    have.pop(k, None)
            stats.paired += 1
            done += 1
            yield StereoFrame(t, msgs.pop("left"), msgs.pop("right"), msgs.pop("left_info"),
                              msgs.pop("right_info"), msgs)
        if done == len(plans):
            break
