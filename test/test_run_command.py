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


def test_dry_run_prints_the_resolved_graph(capsys):
    assert run_cmd.run(parse("--source", "usb", "--dry-run", "--param", "baseline:=0.07")) == 0
    out = capsys.readouterr().out
    assert "node /depth_node (stereo_depth_ros depth_node)" in out
    assert "remap right/image_rect -> /stereo/right/image_rect" in out
    assert "param baseline = 0.07" in out
    assert "external node image_proc rectify_node in /stereo/left" in out


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
    from sensor_msgs.msg import Image, Range
    from stereo_msgs.msg import DisparityImage

    namespace = f"run_synth_{os.getpid()}"
    cmd = [sys.executable, "-m", "stereo_depth_ros.cli", "run", "--source", "synthetic",
           "--namespace", namespace, "--backend", "sgbm", "--nearest-param", "backend:=threshold",
           "--dds", "loopback",
           "--camera-param", "width:=320", "--camera-param", "height:=240",
           "--camera-param", "rate:=4.0", "--camera-param", "max_disparity:=56.0", "--duration", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("run_synthetic_listener", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    disparities: list = []
    truths: dict = {}
    ranges: list = []
    node.create_subscription(DisparityImage, f"/{namespace}/disparity", disparities.append, 10)
    node.create_subscription(Range, f"/{namespace}/nearest_object/distance", ranges.append, 10)
    node.create_subscription(Image, f"/{namespace}/ground_truth/disparity",
                             lambda m: truths.__setitem__(_stamp(m), m), qos_profile_sensor_data)
    try:
        def matched() -> bool:
            return (proc.poll() is None and any(_stamp(d) in truths for d in disparities)
                    and any(_stamp(r) in {_stamp(d) for d in disparities} for r in ranges))

        ok = _wait(executor, matched, timeout=150.0)
        if not ok:
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=30)[0]
            pytest.fail(f"no disparity matched to ground truth or no nearest-object distance "
                        f"({len(disparities)} disparities, {len(ranges)} ranges); rc={proc.returncode}:\n"
                        f"{output[-4000:]}")
        msg = next(d for d in disparities if _stamp(d) in truths)
        gt = _image_array(truths[_stamp(msg)])
        pred = _image_array(msg.image)
        assert msg.header.frame_id
        assert msg.f > 0 and msg.t > 0
        valid = np.isfinite(pred) & (pred > msg.min_disparity)
        assert valid.mean() > 0.25, f"only {valid.mean():.0%} of pixels have a disparity"
        error = np.abs(pred[valid] - gt[valid])
        assert np.median(error) < 1.0, f"median disparity error {np.median(error):.2f} px"
        # the nearest-object node ran on the depth node's disparity (same stamp)
        distance = next(r for r in ranges if _stamp(r) in {_stamp(d) for d in disparities})
        assert distance.header.frame_id == msg.header.frame_id
        assert np.isinf(distance.range) or 0.0 < distance.range <= distance.max_range
        gt_depth_min = msg.f * msg.t / np.nanmax(gt)
        assert distance.range >= 0.8 * gt_depth_min, "nearer than anything in the scene"
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


# (source, its template arguments, driver encoding, right-left stamp skew s, right P[3] set?, baseline
# the disparity message must carry). AirSim: bgr8, 30 ms skew, P[3] = 0 (baseline from the source's
# parameter); RealSense: mono8 infra pair, exact stamps, baseline from camera_info; ZED: bgra8.
DRIVERS = [
    ("airsim", ("--vehicle", "test_drone"), "bgr8", 0.03, False, 0.25),
    ("cosys_airsim", ("--vehicle", "test_drone"), "bgr8", 0.03, False, 0.25),
    ("realsense", (), "mono8", 0.0, True, 0.12),
    ("zed", ("--camera-name", "zed_t"), "bgra8", 0.0, True, 0.12),
]


def _image_msg(rgb: np.ndarray, encoding: str, stamp, frame: str):
    import cv2
    from sensor_msgs.msg import Image

    converted = {"bgr8": lambda a: a[:, :, ::-1], "bgra8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGRA),
                 "mono8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)}[encoding](rgb)
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame
    msg.height, msg.width = converted.shape[:2]
    msg.encoding = encoding
    msg.step = converted.shape[1] * (1 if converted.ndim == 2 else converted.shape[2])
    msg.data = np.ascontiguousarray(converted).tobytes()
    return msg


@pytest.mark.ros
@pytest.mark.parametrize(("source_name", "source_args", "encoding", "skew", "p3_set", "baseline"), DRIVERS,
                         ids=[d[0] for d in DRIVERS])
def test_driver_named_topics_reach_the_depth_node(source_name, source_args, encoding, skew, p3_set, baseline):
    """A stand-in driver publishes on the source file's topics with the driver's conventions; the
    depth node built exactly as `stereo-depth run` builds it pairs them and publishes disparity."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image
    from stereo_msgs.msg import DisparityImage

    from stereo_depth_ros.data.synthetic import StereoRig, render_random
    from stereo_depth_ros.ros import runner

    rig = StereoRig.for_size(320, 240, baseline=baseline)
    sample = render_random(7, rig, max_disparity=56.0)
    namespace = f"run_{source_name}_{os.getpid()}"
    source, specs = run_cmd.build_plan(parse(
        "--source", source_name, *source_args, "--backend", "sgbm", "--no-nearest-object",
        "--namespace", namespace))
    topics = source.topics
    assert all(t.startswith("/") and not t.startswith(f"/{namespace}") for t in topics.values())

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    nodes = []
    try:
        depth = runner.make_node(specs[0], context)  # exactly what `stereo-depth run` builds
        nodes.append(depth)
        driver = rclpy.create_node(f"fake_{source_name}_driver", context=context)
        nodes.append(driver)
        for n in nodes:
            executor.add_node(n)
        received: list = []
        driver.create_subscription(DisparityImage, f"/{namespace}/disparity", received.append, 10)
        pubs = {name: driver.create_publisher(Image if "image" in name else CameraInfo, topic, 10)
                for name, topic in topics.items()}

        def info(stamp, frame: str, right: bool) -> CameraInfo:
            msg = CameraInfo()
            msg.header.stamp, msg.header.frame_id = stamp, frame
            msg.width, msg.height = rig.width, rig.height
            msg.k = [rig.fx, 0.0, rig.cx, 0.0, rig.fy, rig.cy, 0.0, 0.0, 1.0]
            left_p, right_p = rig.projections()
            msg.p = right_p if right and p3_set else left_p  # left_p[3] = 0: AirSim's right P
            return msg

        _wait(executor, lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20.0)
        sent = []
        start = time.time()
        for i in range(40):
            left_stamp = rclpy.time.Time(seconds=start + 0.25 * i).to_msg()
            right_stamp = rclpy.time.Time(seconds=start + 0.25 * i + skew).to_msg()
            sent.append((left_stamp.sec, left_stamp.nanosec))
            pubs["left/camera_info"].publish(info(left_stamp, "cam_left_optical", False))
            pubs["right/camera_info"].publish(info(right_stamp, "cam_right_optical", True))
            pubs["left/image_rect"].publish(_image_msg(sample.left, encoding, left_stamp, "cam_left_optical"))
            pubs["right/image_rect"].publish(
                _image_msg(sample.right, encoding, right_stamp, "cam_right_optical"))
            if _wait(executor, lambda: bool(received), 0.25):
                break
        assert received, f"no disparity from {source_name}-style input; depth node counters {depth.counters}"
        msg = received[0]
        assert _stamp(msg) in sent, "disparity must carry the left input stamp"
        assert msg.header.frame_id == "cam_left_optical"
        # AirSim: from the baseline parameter (camera_info had P[3] = 0); others: from camera_info
        assert msg.t == pytest.approx(baseline)
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
    from stereo_depth_ros.ros.nearest_object_node import NearestObjectNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        for cls, params_file, backend in ((DepthNode, "depth_node.yaml", "sgbm"),
                                          (NearestObjectNode, "nearest_object.yaml", "threshold")):
            node = cls(context=context, parameter_overrides=[Parameter("backend", value=backend)])
            try:
                for name, value in load_params_file(ROOT / "config" / params_file, "x").items():
                    assert node.has_parameter(name), f"config/{params_file} sets undeclared '{name}'"
                    declared = node.get_parameter(name).value
                    if name != "backend":
                        assert type(declared) is type(value), f"{params_file}: {name} type differs"
            finally:
                node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.ros
def test_bag_source_plays_a_recorded_bag_into_the_depth_node(tmp_path):
    """`stereo-depth record` -> `stereo-depth replay` (with /clock) -> the bag source's wiring."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from stereo_msgs.msg import DisparityImage

    from stereo_depth_ros.commands.record import record_bag
    from stereo_depth_ros.ros import runner

    bag = tmp_path / "bag"
    start_ns = 1_000_000_000_000  # recorded stamps at t = 1000 s: not wall-clock time
    record_bag(bag, frames=4, width=320, height=240, rate=5.0, max_disparity=56.0, start_ns=start_ns)
    prefix = f"/bag_{os.getpid()}"
    source, specs = run_cmd.build_plan(parse(
        "--source", "bag", "--backend", "sgbm", "--no-nearest-object", "--namespace", prefix.strip("/"),
        "--arg", f"left_image:={prefix}/left/image_rect", "--arg", f"left_info:={prefix}/left/camera_info",
        "--arg", f"right_image:={prefix}/right/image_rect",
        "--arg", f"right_info:={prefix}/right/camera_info"))
    assert specs[0].parameters["use_sim_time"] is True  # the bag source runs on the bag's clock

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    nodes, proc = [], None
    try:
        nodes.append(runner.make_node(specs[0], context))
        listener = rclpy.create_node("bag_listener", context=context)
        nodes.append(listener)
        for n in nodes:
            executor.add_node(n)
        received, truths = [], {}
        listener.create_subscription(DisparityImage, f"{prefix}/disparity", received.append, 10)
        listener.create_subscription(Image, f"{prefix}/ground_truth/disparity",
                                     lambda m: truths.__setitem__(_stamp(m), m), qos_profile_sensor_data)
        proc = subprocess.Popen(
            [sys.executable, "-m", "stereo_depth_ros.cli", "replay", str(bag), "--prefix", prefix, "--loop",
             "--dds", "loopback", "--wait-for-subscribers", "/left/image_rect", "--wait-timeout", "30"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ok = _wait(executor, lambda: any(_stamp(d) in truths for d in received) or proc.poll() is not None,
                   90.0)
        if not any(_stamp(d) in truths for d in received):
            proc.send_signal(signal.SIGINT)
            output = proc.communicate(timeout=20)[0]
            pytest.fail(f"no disparity from the replayed bag ({len(received)} disparities, "
                        f"{len(truths)} GT); replay rc={proc.returncode}:\n{output[-3000:]}")
        assert ok
        msg = next(d for d in received if _stamp(d) in truths)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert (stamp_ns - start_ns) % 200_000_000 == 0 and 0 <= stamp_ns - start_ns < 4 * 200_000_000
        pred, gt = _image_array(msg.image), _image_array(truths[_stamp(msg)])
        valid = np.isfinite(pred) & (pred > msg.min_disparity)
        assert valid.mean() > 0.25
        assert np.median(np.abs(pred[valid] - gt[valid])) < 1.0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        executor.shutdown()
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown(context=context)
