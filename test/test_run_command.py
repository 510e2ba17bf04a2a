"""``stereo-depth run``: the launch graph in one process, wired from config/sources/*.yaml.

The ROS tests run the wiring for real over DDS: the runner as a subprocess with the synthetic
camera, and the runner's own node construction with the AirSim source fed by a test publisher
that behaves like the AirSim wrapper (P[3] = 0 on both cameras, right stamped 30 ms late).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stereo_depth_ros.commands import run as run_cmd
from stereo_depth_ros.sources import load_params_file

ROOT = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


# --- argument handling (no rclpy) ----------------------------------------------------------------

def test_flags_reach_the_planned_nodes():
    source, specs = run_cmd.build_plan(parse(
        "--source", "airsim", "--vehicle", "Car1", "--backend", "sgbm", "--device", "cpu",
        "--param", "baseline:=0.3", "--param", "slop:=0.08", "--no-nearest-object", "--namespace", "sim"))
    assert source.topics["left/image_rect"] == "/airsim_node/Car1/front_left/Scene"
    (depth,) = specs
    assert depth.key == "depth_node" and depth.namespace == "sim"
    assert depth.parameters["backend"] == "sgbm"
    assert depth.parameters["device"] == "cpu"
    assert depth.parameters["baseline"] == pytest.approx(0.3)
    assert depth.parameters["slop"] == pytest.approx(0.08)
    assert depth.parameters["approximate_sync"] is True  # from the AirSim source file
    assert "left/image_rect:=/airsim_node/Car1/front_left/Scene" in depth.ros_args()


def test_camera_params_and_generic_source_arguments():
    _, specs = run_cmd.build_plan(parse("--camera-param", "rate:=2", "--use-sim-time", "true"))
    camera = next(s for s in specs if s.key == "synthetic_camera")
    assert camera.parameters["rate"] == 2.0 and isinstance(camera.parameters["rate"], float)
    assert all(s.parameters["use_sim_time"] is True for s in specs)
    source, _ = run_cmd.build_plan(parse("--source", "bag", "--arg", "left_image:=/cam/left"))
    assert source.topics["left/image_rect"] == "/cam/left"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--source", "kinect"), "unknown source 'kinect'"),
        (("--source", "zed", "--vehicle", "drone_1"), "takes no argument 'vehicle'"),
        (("--param", "baseline=0.2"), "name:=value"),
        (("--source", "airsim", "--param", "approximate_sync:=sometimes"), "'approximate_sync' is a boolean"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(capsys, argv, message):
    assert run_cmd.run(parse(*argv)) == 2
    assert message in capsys.readouterr().err


# --- over DDS ------------------------------------------------------------------------------------

def _wait(executor, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def _image_array(msg) -> np.ndarray:
    assert msg.encoding == "32FC1" and not msg.is_bigendian
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    return rows[:, : msg.width * 4].copy().view(np.float32).reshape(msg.height, msg.width)


def _stamp(msg) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


@pytest.mark.ros
def test_run_synthetic_publishes_correct_disparity_and_stops_on_sigint():
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from stereo_msgs.msg import DisparityImage

    namespace = f"run_synth_{os.getpid()}"
    cmd = [sys.executable, "-m", "stereo_depth_ros.cli", "run", "--source", "synthetic",
           "--namespace", namespace, "--backend", "sgbm", "--no-nearest-object", "--dds", "loopback",
           "--camera-param", "width:=320", "--camera-param", "height:=240",
           "--camera-param", "rate:=4.0", "--duration", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("run_synthetic_listener", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    disparities: list = []
    truths: dict = {}
    node.create_subscription(DisparityImage, f"/{namespace}/disparity", disparities.append, 10)
    node.create_subscription(Image, f"/{namespace}/ground_truth/disparity",
                             lambda m: truths.__setitem__(_stamp(m), m), qos_profile_sensor_data)
    try:
        def matched() -> bool:
            return proc.poll() is None and any(_stamp(d) in truths for d in disparities)

        ok = _wait(executor, matched, timeout=150.0)
        if not ok:
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=30)[0]
            pytest.fail(f"no disparity matched to ground truth; rc={proc.returncode}:\n{output[-4000:]}")
        msg = next(d for d in disparities if _stamp(d) in truths)
        gt = _image_array(truths[_stamp(msg)])
        pred = _image_array(msg.image)
        assert msg.header.frame_id
        assert msg.f > 0 and msg.t > 0
        valid = np.isfinite(pred) & (pred > msg.min_disparity)
        assert valid.mean() > 0.25, f"only {valid.mean():.0%} of pixels have a disparity"
        error = np.abs(pred[valid] - gt[valid])
        assert np.median(error) < 1.0, f"median disparity error {np.median(error):.2f} px"
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    assert proc.returncode == 0, f"no clean stop on SIGINT (rc {proc.returncode}):\n{output[-3000:]}"


@pytest.mark.ros
def test_airsim_source_pairs_skewed_stamps_and_uses_the_baseline_parameter():
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image
    from stereo_msgs.msg import DisparityImage

    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    rig = StereoRig.for_size(320, 240, baseline=0.25)
    sample = render_random(7, rig, max_disparity=56.0)
    namespace = f"run_airsim_{os.getpid()}"
    vehicle = "test_drone"
    source, specs = run_cmd.build_plan(parse(
        "--source", "airsim", "--vehicle", vehicle, "--backend", "sgbm", "--no-nearest-object",
        "--namespace", namespace))
    topics = source.topics
    assert topics["left/image_rect"] == f"/airsim_node/{vehicle}/front_left/Scene"

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    nodes = []
    try:
        depth = run_cmd.make_node(specs[0], context)  # exactly what `stereo-depth run` builds
        nodes.append(depth)
        driver = rclpy.create_node("fake_airsim_node", context=context)
        nodes.append(driver)
        for n in nodes:
            executor.add_node(n)
        received: list = []
        driver.create_subscription(DisparityImage, f"/{namespace}/disparity", received.append, 10)
        pubs = {name: driver.create_publisher(Image if "image" in name else CameraInfo, topic, 10)
                for name, topic in topics.items()}

        def info(stamp, frame: str) -> CameraInfo:
            msg = CameraInfo()
            msg.header.stamp, msg.header.frame_id = stamp, frame
            msg.width, msg.height = rig.width, rig.height
            msg.k = [rig.fx, 0.0, rig.cx, 0.0, rig.fy, rig.cy, 0.0, 0.0, 1.0]
            msg.p = [rig.fx, 0.0, rig.cx, 0.0, 0.0, rig.fy, rig.cy, 0.0, 0.0, 0.0, 1.0, 0.0]  # P[3] = 0
            return msg

        def image(rgb: np.ndarray, stamp, frame: str) -> Image:
            msg = Image()
            msg.header.stamp, msg.header.frame_id = stamp, frame
            msg.height, msg.width = rgb.shape[:2]
            msg.encoding, msg.step = "bgr8", rgb.shape[1] * 3  # AirSim publishes bgr8
            msg.data = np.ascontiguousarray(rgb[:, :, ::-1]).tobytes()
            return msg

        _wait(executor, lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20.0)
        sent = []
        start = time.time()
        for i in range(40):
            left_stamp = rclpy.time.Time(seconds=start + 0.25 * i).to_msg()
            right_stamp = rclpy.time.Time(seconds=start + 0.25 * i + 0.03).to_msg()  # 30 ms skew
            sent.append((left_stamp.sec, left_stamp.nanosec))
            pubs["left/camera_info"].publish(info(left_stamp, "front_left_optical"))
            pubs["right/camera_info"].publish(info(right_stamp, "front_right_optical"))
            pubs["left/image_rect"].publish(image(sample.left, left_stamp, "front_left_optical"))
            pubs["right/image_rect"].publish(image(sample.right, right_stamp, "front_right_optical"))
            if _wait(executor, lambda: bool(received), 0.25):
                break
        assert received, f"no disparity from skewed AirSim-style input; depth node counters {depth.counters}"
        msg = received[0]
        assert _stamp(msg) in sent, "disparity must carry the left input stamp"
        assert msg.header.frame_id == "front_left_optical"
        assert msg.t == pytest.approx(0.25)  # from the baseline parameter: camera_info had P[3] = 0
        assert msg.f == pytest.approx(rig.fx)
        pred = _image_array(msg.image)
        valid = np.isfinite(pred) & (pred > msg.min_disparity)
        assert valid.mean() > 0.25, f"only {valid.mean():.0%} of pixels have a disparity"
        error = np.abs(pred[valid] - sample.disparity[valid])
        assert np.median(error) < 1.0, f"median disparity error {np.median(error):.2f} px"
    finally:
        executor.shutdown()
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown(context=context)


@pytest.mark.ros
def test_params_file_keys_are_parameters_the_nodes_declare():
    import rclpy
    from rclpy.parameter import Parameter

    from stereo_depth_ros.ros.depth_node import DepthNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = DepthNode(context=context, parameter_overrides=[Parameter("backend", value="sgbm")])
        try:
            for name in load_params_file(ROOT / "config" / "depth_node.yaml", "depth_node"):
                assert node.has_parameter(name), f"config/depth_node.yaml sets undeclared '{name}'"
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
