"""AirSim capture conversions and the capture-airsim command, on responses the tests build.

A live AirSim is not available here: the command runs against a stand-in client module that
answers like ``airsim`` (ImageResponse fields, CameraInfo with fov and pose) from a synthetic
scene whose exact disparity is known.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from stereo_depth_ros.commands import capture_airsim
from stereo_depth_ros.data.airsim_capture import (
    CaptureError,
    baseline_from_positions,
    convert_responses,
    decode_depth_planar,
    decode_scene,
    depth_to_disparity,
    import_client,
    intrinsics_from_fov,
)
from stereo_depth_ros.data.synthetic import StereoRig, render_random

RNG = np.random.default_rng(3)


def scene_response(rgb: np.ndarray, compress: bool = False, alpha: bool = False, camera: str = "front_left"):
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA if alpha else cv2.COLOR_RGB2BGR)
    data = cv2.imencode(".png", bgr)[1].tobytes() if compress else bgr.tobytes()
    return SimpleNamespace(image_data_uint8=data, image_data_float=[], width=rgb.shape[1],
                           height=rgb.shape[0], compress=compress, pixels_as_float=False,
                           camera_name=camera, image_type=0, time_stamp=123)


def depth_response(depth: np.ndarray, camera: str = "front_left"):
    return SimpleNamespace(image_data_uint8=b"", image_data_float=depth.ravel().tolist(),
                           width=depth.shape[1], height=depth.shape[0], compress=False,
                           pixels_as_float=True, camera_name=camera, image_type=1, time_stamp=123)


@pytest.mark.parametrize(("compress", "alpha"), [(False, False), (False, True), (True, False)])
def test_scene_bytes_become_rgb(compress, alpha):
    rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    out = decode_scene(scene_response(rgb, compress, alpha))
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, rgb)


def test_bad_scene_responses_are_named():
    empty = SimpleNamespace(image_data_uint8=b"", width=0, height=0, compress=False, camera_name="nope",
                            image_type=0)
    with pytest.raises(CaptureError, match="camera 'nope' image type 0 returned an empty image"):
        decode_scene(empty)
    wrong = scene_response(np.zeros((4, 4, 3), np.uint8))
    wrong.width = 5
    with pytest.raises(CaptureError, match="not 5x4"):
        decode_scene(wrong)
    garbage = scene_response(np.zeros((4, 4, 3), np.uint8), compress=True)
    garbage.image_data_uint8 = b"not a png at all"
    with pytest.raises(CaptureError, match="not a decodable PNG"):
        decode_scene(garbage)


def test_depth_planar_floats_become_metres_with_nan_for_invalid():
    depth = np.array([[1.0, 2.5], [0.0, np.inf]], dtype=np.float32)
    out = decode_depth_planar(depth_response(depth))
    assert out.dtype == np.float32
    assert out[0, 0] == 1.0 and out[0, 1] == 2.5
    assert np.isnan(out[1]).all()
    short = depth_response(depth)
    short.image_data_float = [1.0, 2.0, 3.0]
    with pytest.raises(CaptureError, match="3 depth values for 2x2"):
        decode_depth_planar(short)
    with pytest.raises(CaptureError, match="pixels_as_float=True"):
        decode_depth_planar(depth_response(np.zeros((0, 0), np.float32)))


def test_fov_gives_pinhole_intrinsics():
    k = intrinsics_from_fov(640, 480, 90.0)
    assert k.fx == pytest.approx(320.0) and k.fy == pytest.approx(320.0)  # w / (2 tan 45 deg)
    assert (k.cx, k.cy) == (320.0, 240.0)
    assert intrinsics_from_fov(256, 144, 60.0).fx == pytest.approx(128 / math.tan(math.radians(30)))
    with pytest.raises(CaptureError, match="FOV"):
        intrinsics_from_fov(640, 480, 180.0)


def test_depth_planar_to_disparity_and_baseline_from_poses():
    depth = np.array([[2.0, 4.0, np.nan]], dtype=np.float32)
    np.testing.assert_allclose(depth_to_disparity(depth, 320.0, 0.25)[0, :2], [40.0, 20.0])
    assert np.isnan(depth_to_disparity(depth, 320.0, 0.25)[0, 2])
    assert baseline_from_positions([0.3, -0.125, 0.0], [0.3, 0.125, 0.0]) == pytest.approx(0.25)
    with pytest.raises(CaptureError, match="same position"):
        baseline_from_positions([1, 2, 3], [1, 2, 3])


def test_responses_of_different_sizes_are_rejected():
    with pytest.raises(CaptureError, match="sizes differ"):
        convert_responses([scene_response(np.zeros((4, 4, 3), np.uint8)),
                           scene_response(np.zeros((4, 6, 3), np.uint8)),
                           depth_response(np.ones((4, 4), np.float32))])


# --- the command against a stand-in client ------------------------------------------------------

def fake_airsim(sample, fov: float, baseline: float, reachable: bool = True) -> types.ModuleType:
    module = types.ModuleType("airsim")

    class ImageRequest:
        def __init__(self, camera_name, image_type, pixels_as_float=False, compress=True):
            self.camera_name, self.image_type = camera_name, image_type
            self.pixels_as_float, self.compress = pixels_as_float, compress

    def pose(y: float):
        return SimpleNamespace(position=SimpleNamespace(x_val=0.3, y_val=y, z_val=0.0),
                               orientation=SimpleNamespace(w_val=1.0, x_val=0.0, y_val=0.0, z_val=0.0))

    class VehicleClient:
        def __init__(self, ip="", port=41451, timeout_value=3600):
            self.paused = []

        def confirmConnection(self):  # noqa: N802 (AirSim's name)
            if not reachable:
                raise ConnectionRefusedError("[Errno 111] Connection refused")

        def simGetCameraInfo(self, camera_name, vehicle_name=""):  # noqa: N802
            y = -baseline / 2 if camera_name == "front_left" else baseline / 2
            return SimpleNamespace(fov=fov, pose=pose(y))

        def simPause(self, paused):  # noqa: N802
            self.paused.append(paused)

        def simGetImages(self, requests, vehicle_name=""):  # noqa: N802
            out = []
            for r in requests:
                if r.image_type == 1:
                    assert r.pixels_as_float
                    out.append(depth_response(sample.depth, r.camera_name))
                else:
                    rgb = sample.left if r.camera_name == "front_left" else sample.right
                    out.append(scene_response(rgb, compress=r.compress, camera=r.camera_name))
            return out

    module.ImageRequest = ImageRequest
    module.VehicleClient = VehicleClient
    return module


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    capture_airsim.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_capture_writes_frames_whose_depth_gives_the_exact_disparity(tmp_path, monkeypatch):
    fov, baseline = 90.0, 0.25
    k = intrinsics_from_fov(96, 64, fov)
    rig = StereoRig(width=96, height=64, fx=k.fx, fy=k.fy, cx=k.cx, cy=k.cy, baseline=baseline)
    sample = render_random(11, rig, max_disparity=24.0)
    monkeypatch.setitem(sys.modules, "airsim", fake_airsim(sample, fov, baseline))
    out = tmp_path / "capture"
    assert capture_airsim.run(parse("--out", str(out), "--frames", "2", "--interval", "0")) == 0

    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["fx"] == pytest.approx(k.fx) and calibration["baseline"] == pytest.approx(baseline)
    assert (calibration["width"], calibration["height"]) == (96, 64)
    assert sorted(p.name for p in (out / "left").iterdir()) == ["000000.png", "000001.png"]
    left = cv2.cvtColor(cv2.imread(str(out / "left" / "000001.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(left, sample.left)
    depth = np.load(out / "depth" / "000000.npy")
    disparity = depth_to_disparity(depth, calibration["fx"], calibration["baseline"])
    np.testing.assert_allclose(disparity, sample.disparity, rtol=1e-4)
    # the dataset reader reads the capture back with the same disparity
    from stereo_depth_ros.data.readers import open_dataset

    dataset = open_dataset("airsim", out)
    assert len(dataset) == 2
    record = dataset[0]
    np.testing.assert_array_equal(record.right, sample.right)
    np.testing.assert_allclose(record.disparity, sample.disparity, rtol=1e-4)
    lines = (out / "frames.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1]

    # a second run appends, numbering on
    assert capture_airsim.run(parse("--out", str(out), "--frames", "1", "--interval", "0")) == 0
    assert (out / "right" / "000002.png").is_file()


def test_capture_into_a_folder_of_another_rig_is_refused(tmp_path, monkeypatch):
    rig = StereoRig(width=32, height=24, fx=16.0, fy=16.0, cx=16.0, cy=12.0, baseline=0.25)
    sample = render_random(2, rig)
    monkeypatch.setitem(sys.modules, "airsim", fake_airsim(sample, 90.0, 0.25))
    out = tmp_path / "c"
    assert capture_airsim.run(parse("--out", str(out), "--frames", "1")) == 0
    assert capture_airsim.run(parse("--out", str(out), "--frames", "1", "--baseline", "0.5")) == 1
    assert len(list((out / "left").iterdir())) == 1


def test_unreachable_airsim_and_missing_client_are_clear_errors(tmp_path, monkeypatch, capsys):
    sample = render_random(1, StereoRig(width=16, height=12, fx=8.0, fy=8.0, cx=8.0, cy=6.0, baseline=0.25))
    monkeypatch.setitem(sys.modules, "airsim", fake_airsim(sample, 90.0, 0.25, reachable=False))
    assert capture_airsim.run(parse("--out", str(tmp_path / "x"), "--client", "airsim")) == 1
    assert "cannot reach AirSim at 127.0.0.1:41451" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "cosysairsim", None)  # importing it raises ImportError
    with pytest.raises(CaptureError, match="pip install airsim"):
        import_client("cosysairsim")
    assert not (tmp_path / "x").exists()
