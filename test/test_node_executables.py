"""The node executables as `ros2 run` starts them: a node that cannot start says why and exits 1;
a running node stops cleanly (exit 0) on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros


def _run(module: str, *ros_args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", module, "--ros-args", *ros_args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("module", "name", "params"), [
    ("stereo_depth_ros.ros.depth_node", "depth_node", ["-p", "backend:=learned"]),
    ("stereo_depth_ros.ros.nearest_object_node", "nearest_object_node", ["-p", "backend:=unet"]),
])
def test_a_node_that_cannot_load_its_weights_says_so_and_exits_1(tmp_path, module, name, params):
    missing = tmp_path / "absent.pt"
    proc = _run(module, *params, "-p", f"model:={missing}", "-r", f"__ns:=/exe_{os.getpid()}")
    assert proc.returncode == 1, proc.stderr
    assert f"{name}: cannot start:" in proc.stderr and str(missing) in proc.stderr


def test_synthetic_camera_runs_until_sigint_and_exits_0():
    cmd = [sys.executable, "-m", "stereo_depth_ros.ros.synthetic_camera", "--ros-args",
           "-r", f"__ns:=/exe_cam_{os.getpid()}", "-p", "width:=64", "-p", "height:=48", "-p", "rate:=5.0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60.0
        lines = []
        while time.monotonic() < deadline:  # its start-up log line says it is spinning
            line = proc.stdout.readline()
            lines.append(line)
            if "synthetic stereo camera" in line or not line:
                break
        assert any("synthetic stereo camera" in ln for ln in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + output
    assert "Traceback" not in output
