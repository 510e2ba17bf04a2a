"""The package in a ROS 2 workspace, with the real tools: colcon build, then ros2 launch.

Runs the README's "In a ROS 2 workspace" sequence (the steps below, which the README must
contain word for word): a virtual environment with the package's requirements and the real
launch / launch_ros / ros2cli / colcon wheels of ``shared/ros2-python`` (cached under
``.cache/ros2_workspace/``, rebuilt only when what goes into it changes), ``colcon build`` of a
copy of this checkout in a temporary workspace, ``source install/setup.bash``, the package's
Fast DDS profile, and ``ros2 launch``:

- ``depth.launch.py source:=synthetic``: disparity, depth, points2 and nearest_object/distance
  checked against the synthetic camera's ground truth;
- ``depth.launch.py source:=bag`` against a recorded bag replayed in a loop, and
  ``airsim.launch.py`` against a replayed bag with AirSim's topic names, skewed stamps and no
  baseline in camera_info;
- every node is gone after one SIGINT to ``ros2 launch`` and after two (Ctrl-C in a terminal, or
  ``timeout -s INT``, signal the whole process group: each node gets one from the terminal and
  one forwarded by launch), and no traceback is printed;
- a missing rviz2 / image_proc stops the launch before anything starts; ``airsim.launch.py
  --show-args`` offers no ``source``.

Skipped, with the reason, where neither ``shared/ros2-python`` nor a ROS install (ros2 and colcon
on PATH) is there. Values are checked with the sgbm backend, set explicitly.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from shared_dir import ROOT, shared_path

# the first run builds the cached venv (minutes); each launch waits for frames up to 300 s
pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(1800)]

ROS2_PYTHON = shared_path("ros2-python")
ROS_INSTALL = bool(os.environ.get("AMENT_PREFIX_PATH")) and bool(shutil.which("ros2")) and bool(
    shutil.which("colcon"))
CACHE = ROOT / ".cache" / "ros2_workspace"
PROFILE = "$(ros2 pkg prefix stereo_depth_ros)/share/stereo_depth_ros/dds/fastdds_loopback.xml"

# The README's sequence, word for word (~/ros2_ws and ~/ros2_venv are replaced by temporary paths).
VENV_STEPS = [
    "python3 -m venv ~/ros2_venv && source ~/ros2_venv/bin/activate",
    "pip install -r src/stereo_depth_ros/requirements.txt",
    "../shared/ros2-python/install.sh ~/ros2_venv",
]
BUILD_STEPS = [
    "cd ~/ros2_ws",
    "colcon build --packages-select stereo_depth_ros",
    "source install/setup.bash",
    f"export FASTDDS_DEFAULT_PROFILES_FILE={PROFILE}",
]
LAUNCH_STEPS = [
    "ros2 launch stereo_depth_ros depth.launch.py source:=synthetic backend:=sgbm",
    "ros2 run stereo_depth_ros bag_replay BAG --loop",
    "ros2 launch stereo_depth_ros depth.launch.py source:=bag backend:=sgbm",
    "ros2 launch stereo_depth_ros airsim.launch.py backend:=sgbm",
]


def readme_workspace_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## In a ROS 2 workspace")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_workspace_section_is_the_sequence_this_test_runs():
    section = readme_workspace_section()
    for step in VENV_STEPS + BUILD_STEPS + LAUNCH_STEPS:
        assert step in section, f"README's ROS 2 workspace section lacks: {step}"


# --- the environment: a ROS install, or a venv with the shared wheels --------------------------

def _venv_key() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "requirements.txt", ROS2_PYTHON / "install.sh"):
        digest.update(path.read_bytes())
    for wheel in sorted((ROS2_PYTHON / "wheels").glob("*.whl")):
        digest.update(wheel.name.encode())
    return digest.hexdigest()[:16]


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, f"{script}\nfailed ({proc.returncode}):\n{output}"
    return proc


def _venv(base_env: dict[str, str]) -> Path:
    """The cached venv (VENV_STEPS with ~/ros2_venv = the cache), built when missing or stale."""
    venv = CACHE / f"venv-{_venv_key()}"
    stamp = venv / ".complete"
    if stamp.is_file():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    for marker in ("COLCON_IGNORE", "AMENT_IGNORE", "CATKIN_IGNORE"):  # never a package source
        (CACHE / marker).touch()
    for old in CACHE.glob("venv-*"):
        shutil.rmtree(old, ignore_errors=True)
    src = CACHE / "src"
    src.mkdir(exist_ok=True)
    link = src / "stereo_depth_ros"
    if not link.exists():
        link.symlink_to(ROOT)
    script = "\n".join(VENV_STEPS).replace("~/ros2_venv", str(venv)).replace(
        "../shared/ros2-python", str(ROS2_PYTHON))
    _bash(script, CACHE, base_env, timeout=1800)
    stamp.write_text("ok\n")
    return venv


def _copy_checkout(dest: Path) -> None:
    """What ``git clone`` would give: tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = ROOT / name
            if source.is_file():
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    else:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".venv", ".cache", ".git", "build", "install", "log", "results", "__pycache__"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """The environment of a shell that ran the README's steps: ``source install/setup.bash`` done."""
    if not (ROS2_PYTHON or ROS_INSTALL):
        pytest.skip("neither shared/ros2-python (the real launch/ros2cli wheels) nor a ROS 2 install "
                    "(ros2 and colcon on PATH) is here: colcon build and ros2 launch cannot run")
    base = {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONPATH", "FASTDDS_DEFAULT_PROFILES_FILE")}
    base["PATH"] = os.pathsep.join(p for p in base["PATH"].split(os.pathsep)
                                   if not p.startswith(str(ROOT / ".venv")))
    ws = tmp_path_factory.mktemp("ros2_ws")
    _copy_checkout(ws / "src" / "stereo_depth_ros")
    activate = "" if ROS_INSTALL else f"source {_venv(base)}/bin/activate\n"
    script = activate + "\n".join(BUILD_STEPS).replace("~/ros2_ws", str(ws)) + "\nenv -0"
    proc = _bash(script, ws, base, timeout=600)
    env = dict(line.split("=", 1) for line in proc.stdout.split("\0") if "=" in line)
    env["ROS_DOMAIN_ID"] = os.environ["ROS_DOMAIN_ID"]
    profile = env.get("FASTDDS_DEFAULT_PROFILES_FILE", "")
    assert profile.startswith(str(ws / "install")) and Path(profile).is_file(), profile
    env["ROS_LOG_DIR"] = str(ws / "ros_log")
    env["_ws"] = str(ws)
    return env


# --- running ros2 launch -----------------------------------------------------------------------

class Launch:
    """``ros2 launch ...`` in its own process group, output collected from a file."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(["ros2", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=env["_ws"])

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def node_pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in
                re.findall(r"\[INFO\] \[([\w-]+)\]: process started with pid \[(\d+)\]", self.output())}

    def interrupt(self, twice: bool) -> None:
        """One SIGINT to ros2 launch, or (``twice``) one to the whole group, as Ctrl-C does."""
        if twice:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)

    def stop(self, twice: bool, timeout: float = 60.0) -> tuple[int | None, str]:
        pids = self.node_pids()
        self.interrupt(twice)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        alive = {name: pid for name, pid in pids.items() if _alive(pid)}
        output = self.output()
        self.kill()
        assert code is not None, f"ros2 launch still running {timeout:.0f} s after SIGINT:\n{output[-5000:]}"
        assert not alive, f"nodes left running after ros2 launch exited: {alive}\n{output[-5000:]}"
        return code, output

    def terminate(self, timeout: float = 20.0) -> None:
        """SIGINT, then SIGKILL what is still there after ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for pid in self.node_pids().values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def assert_clean(output: str, nodes: dict[str, int]) -> None:
    assert "Traceback" not in output, output[-6000:]
    assert "KeyboardInterrupt" not in output, output[-6000:]
    for name in nodes:
        assert re.search(rf"\[{re.escape(name)}\]: process has finished cleanly", output), \
            f"{name} did not finish cleanly:\n{output[-6000:]}"


# --- a listener in this process (the .venv's rclpy, the same domain and profile) ----------------

class Listener:
    def __init__(self, left_info: str = "left/camera_info") -> None:
        import rclpy
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range
        from stereo_msgs.msg import DisparityImage

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"workspace_listener_{os.getpid()}", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.got: dict[str, dict[tuple[int, int], object]] = {}
        for topic, kind, qos in (
                ("disparity", DisparityImage, QoSProfile(depth=10)), ("depth", Image, QoSProfile(depth=10)),
                ("points2", PointCloud2, QoSProfile(depth=10)),
                ("nearest_object/distance", Range, QoSProfile(depth=10)),
                ("ground_truth/disparity", Image, qos_profile_sensor_data),
                ("ground_truth/depth", Image, qos_profile_sensor_data),
                ("left/camera_info", CameraInfo, qos_profile_sensor_data)):
            self.got[topic] = {}
            name = left_info if topic == "left/camera_info" else topic
            self.node.create_subscription(kind, name, self._store(topic), qos)

    def _store(self, topic: str):
        def store(msg) -> None:
            self.got[topic][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        return store

    def complete_stamps(self, truth: bool = True) -> list[tuple[int, int]]:
        wanted = ["disparity", "depth", "points2", "nearest_object/distance", "left/camera_info"]
        if truth:
            wanted += ["ground_truth/disparity", "ground_truth/depth"]
        stamps = set(self.got["disparity"])
        for topic in wanted:
            stamps &= set(self.got[topic])
        return sorted(stamps)

    def wait(self, launch: Launch, frames: int, timeout: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and launch.proc.poll() is None:
            self.executor.spin_once(timeout_sec=0.1)
            if len(self.complete_stamps()) >= frames:
                break
        stamps = self.complete_stamps()
        assert len(stamps) >= frames, (
            f"{len(stamps)} complete frames in {timeout:.0f} s (received: "
            f"{ {k: len(v) for k, v in self.got.items()} }); ros2 launch said:\n{launch.output()[-6000:]}")
        return stamps

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def check_frame(listener: Listener, stamp: tuple[int, int], baseline: float) -> None:
    """disparity, depth, points2 and the nearest-object distance against the camera's ground truth."""
    from stereo_depth_ros.ros import conversions as conv
    from stereo_depth_ros.ros.compat import point_cloud2

    got = {topic: messages[stamp] for topic, messages in listener.got.items()}
    disparity_msg = got["disparity"]
    assert disparity_msg.t == pytest.approx(baseline, rel=1e-3)
    pred = conv.disparity_from_msg(disparity_msg)
    gt = conv.image_32f(got["ground_truth/disparity"])
    valid = np.isfinite(pred) & np.isfinite(gt) & (gt > 0)
    assert valid.mean() > 0.25, f"only {valid.mean():.0%} of pixels have a disparity"
    assert np.median(np.abs(pred[valid] - gt[valid])) < 1.0
    # where the truth is inside the searched range, most pixels are right within 3 px
    reachable = valid & (gt <= disparity_msg.max_disparity)
    assert np.mean(np.abs(pred[reachable] - gt[reachable]) < 3.0) > 0.7

    depth = conv.image_32f(got["depth"])
    gt_depth = conv.image_32f(got["ground_truth/depth"])
    assert not (np.isfinite(depth) & np.isnan(pred)).any()
    assert np.isfinite(depth[np.isfinite(pred) & (pred > 0)]).all()
    both = np.isfinite(depth) & np.isfinite(gt_depth) & valid
    assert np.median(np.abs(depth[both] - gt_depth[both]) / gt_depth[both]) < 0.05

    cloud = got["points2"]
    pts = point_cloud2.read_points(cloud, field_names=["x", "y", "z"], reshape_organized_cloud=True)
    z = np.asarray(pts["z"], np.float64)
    np.testing.assert_array_equal(np.isnan(z), np.isnan(depth))
    np.testing.assert_allclose(z[both], depth[both], rtol=1e-4)
    info = got["left/camera_info"]
    v, u = np.nonzero(both)
    x_expected = (u - info.k[2]) * z[v, u] / info.k[0]
    np.testing.assert_allclose(np.asarray(pts["x"], np.float64)[v, u], x_expected, rtol=1e-3, atol=1e-3)

    distance = got["nearest_object/distance"]
    assert distance.header.frame_id == disparity_msg.header.frame_id
    finite_gt = gt_depth[np.isfinite(gt_depth) & (gt_depth > 0)]
    if np.isfinite(distance.range):
        assert 0.8 * finite_gt.min() <= distance.range <= finite_gt.max(), (distance.range, finite_gt.min())
    else:
        assert finite_gt.min() > 0.8 * distance.max_range


# --- the tests ---------------------------------------------------------------------------------

def test_synthetic_graph_publishes_correct_outputs_and_stops_on_one_sigint(workspace, tmp_path):
    launch = Launch(workspace, "launch", "stereo_depth_ros", "depth.launch.py", "source:=synthetic",
                    "backend:=sgbm", log=tmp_path / "launch.log")
    try:
        listener = Listener()
        try:
            stamps = listener.wait(launch, frames=2, timeout=300)
            for stamp in stamps[-2:]:
                check_frame(listener, stamp, baseline=0.12)
        finally:
            listener.close()
        nodes = launch.node_pids()
        assert set(nodes) == {"synthetic_camera-1", "depth_node-2", "nearest_object_node-3"}, nodes
        code, output = launch.stop(twice=False)
    finally:
        launch.kill()
    assert_clean(output, nodes)
    assert code == 0, output[-5000:]


def _record(bag: Path, airsim: bool) -> None:
    """A synthetic recording (320x240, 10 Hz); ``airsim``: AirSim's topic names, right camera_info
    with P[3] = 0 and baseline 0.25 m, the right image stamped 20 ms after the left."""
    from stereo_depth_ros.commands.record import RecordTopics, frame_messages, make_rig
    from stereo_depth_ros.data.synthetic import SceneSequence
    from stereo_depth_ros.evaluation import bag_io

    names = RecordTopics()
    if airsim:
        base = "/airsim_node/drone_1/{}/Scene"
        names = RecordTopics(left=base.format("front_left"), right=base.format("front_right"),
                             left_info=base.format("front_left") + "/camera_info",
                             right_info=base.format("front_right") + "/camera_info")
    baseline = 0.25 if airsim else 0.12
    sequence = SceneSequence(3, make_rig(320, 240, baseline), max_disparity=48.0)
    start = 1_700_000_000 * 10**9
    with bag_io.BagWriter(bag) as writer:
        for i in range(20):
            stamp = start + i * 100_000_000
            for topic, msg in frame_messages(sequence.frame(i), stamp, names):
                if airsim and topic == names.right_info:
                    msg.p[3] = 0.0
                if airsim and topic in (names.right, names.right_info):
                    skewed = stamp + 20_000_000
                    msg.header.stamp = bag_io.time_msg(skewed)
                    writer.write(topic, msg, skewed)
                    continue
                writer.write(topic, msg, stamp)


@pytest.mark.parametrize("airsim", [False, True], ids=["bag", "airsim"])
def test_replayed_bag_graph_publishes_correct_outputs_and_stops_on_two_sigints(workspace, tmp_path, airsim):
    bag = tmp_path / "bag"
    _record(bag, airsim)
    replay = Launch(workspace, "run", "stereo_depth_ros", "bag_replay", str(bag), "--loop",
                    log=tmp_path / "replay.log")
    args = ["airsim.launch.py"] if airsim else ["depth.launch.py", "source:=bag"]
    launch = Launch(workspace, "launch", "stereo_depth_ros", *args, "backend:=sgbm",
                    log=tmp_path / "launch.log")
    left_info = "/airsim_node/drone_1/front_left/Scene/camera_info" if airsim else "/left/camera_info"
    try:
        listener = Listener(left_info)
        try:
            stamps = listener.wait(launch, frames=2, timeout=300)
            for stamp in stamps[-2:]:
                check_frame(listener, stamp, baseline=0.25 if airsim else 0.12)
        finally:
            listener.close()
        nodes = launch.node_pids()
        assert set(nodes) == {"depth_node-1", "nearest_object_node-2"}, nodes
        code, output = launch.stop(twice=True)
    finally:
        launch.kill()
        replay.terminate()
    assert_clean(output, nodes)
    assert code == 0, output[-5000:]


@pytest.mark.parametrize(("argument", "package"), [("rviz:=true", "rviz2"), ("source:=usb", "image_proc")])
def test_a_missing_companion_package_stops_the_launch_before_anything_starts(workspace, tmp_path, argument,
                                                                               package):
    launch = Launch(workspace, "launch", "stereo_depth_ros", "depth.launch.py", argument,
                    log=tmp_path / "launch.log")
    try:
        code = launch.proc.wait(timeout=120)
    finally:
        output = launch.output()
        launch.kill()
    assert code != 0, output
    assert "process started" not in output, output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"'{package}'" in errors[0] and "nothing started" in errors[0], output
    assert "Traceback" not in output


def test_airsim_shortcut_offers_no_source_argument(workspace):
    proc = subprocess.run(["ros2", "launch", "stereo_depth_ros", "airsim.launch.py", "--show-args"],
                          env=workspace, capture_output=True, text=True, timeout=120, cwd=workspace["_ws"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "'vehicle':" in proc.stdout and "'baseline':" in proc.stdout
    assert "'source':" not in proc.stdout and "'stereo_namespace':" not in proc.stdout


def test_the_installed_package_is_the_one_that_ran(workspace):
    proc = subprocess.run(["python3", "-c",
                           "import stereo_depth_ros, sys; print(stereo_depth_ros.__file__)"],
                          env=workspace, capture_output=True, text=True, timeout=120, cwd=workspace["_ws"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(Path(workspace["_ws"]) / "install")), proc.stdout
