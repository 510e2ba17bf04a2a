"""AirSim captures: requests, response conversions and the capture folder, without ROS.

The AirSim Python client (``airsim``, or ``cosysairsim`` for Cosys-AirSim) is imported lazily and
only by :func:`connect`; everything else works on plain response objects (anything with the
attributes of ``airsim.ImageResponse``), so it is tested with responses the tests build.

Folder layout written (read back by the AirSim folder reader in stereo_depth_ros.data)::

    OUT/calibration.json     fx, fy, cx, cy, baseline, width, height, fov_degrees, cameras, ...
    OUT/left/000000.png      left Scene image (RGB PNG)
    OUT/right/000000.png     right Scene image
    OUT/depth/000000.npy     left DepthPlanar, float32 metres (NaN where unknown)
    OUT/frames.jsonl         one line per frame: index, AirSim timestamps, camera pose

Disparity for training/evaluation is ``fx * baseline / depth`` (DepthPlanar is the Z distance
along the optical axis, which is what that formula needs; DepthPerspective is not).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CLIENT_PACKAGES = ("airsim", "cosysairsim")
SCENE = 0  # airsim.ImageType.Scene
DEPTH_PLANAR = 1  # airsim.ImageType.DepthPlanar


class CaptureError(RuntimeError):
    """AirSim is missing, unreachable, or returned something unusable; the message says which."""


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def intrinsics_from_fov(width: int, height: int, fov_degrees: float) -> Intrinsics:
    """AirSim's pinhole model: horizontal FOV, square pixels, principal point at the centre."""
    if width <= 0 or height <= 0:
        raise CaptureError(f"image size must be positive, got {width}x{height}")
    if not 0.0 < fov_degrees < 180.0:
        raise CaptureError(f"FOV must be in (0, 180) degrees, got {fov_degrees}")
    fx = width / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))
    return Intrinsics(fx=fx, fy=fx, cx=width / 2.0, cy=height / 2.0, width=int(width), height=int(height))


def _describe(response: Any) -> str:
    camera, kind = getattr(response, "camera_name", "?"), getattr(response, "image_type", "?")
    return f"camera {camera!r} image type {kind}"


def decode_scene(response: Any) -> np.ndarray:
    """A Scene response (compressed PNG or uncompressed BGR/BGRA bytes) -> (H, W, 3) uint8 RGB."""
    width, height = int(response.width), int(response.height)
    data = response.image_data_uint8
    if isinstance(data, list):  # some client versions hand back a list of ints
        data = bytes(data)
    if width <= 0 or height <= 0 or not data:
        raise CaptureError(f"{_describe(response)} returned an empty image: is the camera in settings.json "
                           f"and its CaptureSettings listing ImageType 0?")
    if getattr(response, "compress", False):
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CaptureError(f"{_describe(response)}: compressed image data is not a decodable PNG")
    else:
        flat = np.frombuffer(data, dtype=np.uint8)
        channels, rest = divmod(flat.size, width * height)
        if rest or channels not in (3, 4):
            raise CaptureError(f"{_describe(response)}: {flat.size} bytes is not {width}x{height} "
                               f"with 3 or 4 channels")
        image = flat.reshape(height, width, channels)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[:2] != (height, width):
        raise CaptureError(f"{_describe(response)}: decoded {image.shape[1]}x{image.shape[0]}, "
                           f"response says {width}x{height}")
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return np.ascontiguousarray(cv2.cvtColor(image, code))


def decode_depth_planar(response: Any) -> np.ndarray:
    """A DepthPlanar float response -> (H, W) float32 metres, NaN where not a positive finite depth."""
    width, height = int(response.width), int(response.height)
    values = np.asarray(response.image_data_float, dtype=np.float32)
    if width <= 0 or height <= 0 or values.size == 0:
        raise CaptureError(f"{_describe(response)} returned no depth: request DepthPlanar with "
                           f"pixels_as_float=True and list ImageType 1 in the camera's CaptureSettings")
    if values.size != width * height:
        raise CaptureError(f"{_describe(response)}: {values.size} depth values for {width}x{height}")
    depth = values.reshape(height, width).copy()
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def depth_to_disparity(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """d = fx * B / Z (pixels); NaN where the depth is unknown."""
    if baseline <= 0 or fx <= 0:
        raise CaptureError(f"fx and baseline must be positive (fx={fx}, baseline={baseline})")
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = (fx * baseline) / depth.astype(np.float32)
    disparity[~np.isfinite(disparity) | (disparity <= 0)] = np.nan
    return disparity.astype(np.float32)


def baseline_from_positions(left: Sequence[float], right: Sequence[float]) -> float:
    """Distance between the two cameras' positions (metres, any common frame)."""
    distance = float(np.linalg.norm(np.asarray(right, dtype=float) - np.asarray(left, dtype=float)))
    if distance <= 1e-6:
        raise CaptureError("the two cameras are at the same position: no baseline (check settings.json)")
    return distance


def vector(v: Any) -> list[float]:
    """airsim.Vector3r / Quaternionr (x_val, ...) -> a plain list."""
    names = ("w_val", "x_val", "y_val", "z_val") if hasattr(v, "w_val") else ("x_val", "y_val", "z_val")
    return [float(getattr(v, n)) for n in names]


@dataclass
class Calibration:
    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    width: int
    height: int
    fov_degrees: float
    left_camera: str
    right_camera: str
    vehicle: str
    depth: str = "DepthPlanar of the left camera, metres, float32 .npy"

    def write(self, out: Path) -> Path:
        path = out / "calibration.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


class CaptureWriter:
    """Writes frames into the capture folder, numbering on from what is already there."""

    def __init__(self, out: str | Path, calibration: Calibration) -> None:
        self.out = Path(out)
        for sub in ("left", "right", "depth"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        existing = self.out / "calibration.json"
        if existing.is_file():
            previous = json.loads(existing.read_text())
            for key in ("fx", "baseline", "width", "height"):
                if not math.isclose(float(previous[key]), float(getattr(calibration, key)), rel_tol=1e-6):
                    raise CaptureError(f"{self.out} holds a capture with another {key} "
                                       f"({previous[key]} vs {getattr(calibration, key)}): use a new --out")
        calibration.write(self.out)
        self.calibration = calibration
        self.index = len(list((self.out / "left").glob("*.png")))

    def write(self, left: np.ndarray, right: np.ndarray, depth: np.ndarray, meta: dict[str, Any]) -> int:
        c = self.calibration
        for name, array in (("left", left), ("right", right)):
            if array.shape != (c.height, c.width, 3):
                raise CaptureError(f"{name} image is {array.shape}, calibration says {c.height}x{c.width}x3")
        if depth.shape != (c.height, c.width):
            raise CaptureError(f"depth is {depth.shape}, calibration says {c.height}x{c.width}")
        stem = f"{self.index:06d}"
        for name, array in (("left", left), ("right", right)):
            if not cv2.imwrite(str(self.out / name / f"{stem}.png"), cv2.cvtColor(array, cv2.COLOR_RGB2BGR)):
                raise CaptureError(f"could not write {self.out / name / stem}.png")
        np.save(self.out / "depth" / f"{stem}.npy", depth.astype(np.float32))
        with (self.out / "frames.jsonl").open("a") as handle:
            handle.write(json.dumps({"index": self.index, **meta}) + "\n")
        self.index += 1
        return self.index - 1


def stereo_requests(module: Any, left_camera: str, right_camera: str) -> list[Any]:
    """Left Scene, right Scene (uncompressed) and left DepthPlanar (float) in one simGetImages call."""
    request = module.ImageRequest
    return [
        request(left_camera, SCENE, False, False),
        request(right_camera, SCENE, False, False),
        request(left_camera, DEPTH_PLANAR, True, False),
    ]


def convert_responses(responses: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three responses of :func:`stereo_requests` -> (left RGB, right RGB, depth metres)."""
    if len(responses) != 3:
        raise CaptureError(f"expected 3 image responses (left, right, depth), got {len(responses)}")
    left, right = decode_scene(responses[0]), decode_scene(responses[1])
    depth = decode_depth_planar(responses[2])
    if left.shape != right.shape or depth.shape != left.shape[:2]:
        raise CaptureError(f"left {left.shape}, right {right.shape} and depth {depth.shape} sizes differ: "
                           "give both cameras the same CaptureSettings")
    return left, right, depth


def import_client(package: str | None = None) -> Any:
    """The AirSim Python client module (``airsim`` or ``cosysairsim``), with a clear error if absent."""
    names = [package] if package else list(CLIENT_PACKAGES)
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise CaptureError(
        f"the AirSim Python client is not installed (tried {', '.join(names)}): "
        "pip install airsim (Microsoft AirSim) or cosysairsim (Cosys-AirSim)"
    )


def connect(module: Any, host: str, port: int, timeout: float) -> Any:
    """A connected VehicleClient, or a CaptureError saying AirSim is not reachable."""
    try:
        client = module.VehicleClient(ip=host, port=port, timeout_value=int(max(timeout, 1)))
        client.confirmConnection()
    except Exception as exc:  # msgpack-rpc raises its own transport errors
        raise CaptureError(f"cannot reach AirSim at {host}:{port} ({type(exc).__name__}: {exc}); "
                           "is the simulator running with the API enabled?") from exc
    return client
