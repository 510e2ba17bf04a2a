"""SIGINT and SIGTERM, once or twice, at random moments, to every node executable and every
long-running command, run as a user runs them: each must stop with exit status 0, at most one
line saying so, and no traceback (test/signal_cases.py says what is judged).

CI runs one case per program (about two minutes on two cores). For the long variant:
``STEREO_DEPTH_SIGNAL_ROUNDS=20 scripts/test test/test_signals.py`` (cases per program and
moment); ``STEREO_DEPTH_SIGNAL_SEED`` repeats a run's random choices (every failure names it).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from signal_cases import Target, random_case, run_case

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROUNDS = int(os.environ.get("STEREO_DEPTH_SIGNAL_ROUNDS", "0"))
SEED = int(os.environ.get("STEREO_DEPTH_SIGNAL_SEED", str(int(time.time()) % 100000)))
BIN = Path(sys.executable).parent
NS = f"sig_{os.getpid()}"


def _ros(node: str, ns: str = NS) -> list[str]:
    return ["--ros-args", "-r", f"__ns:=/{ns}", "-r", f"__node:={node}"]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    from stereo_depth_ros.commands.record import record_bag

    path = tmp_path_factory.mktemp("signals") / "bag"
    record_bag(path, frames=4, width=96, height=64, rate=10.0, max_disparity=12.0)
    return path


@pytest.fixture(scope="module")
def feeder(env):
    """A running graph (camera + depth node) in the namespace the node executables join, so they
    are signalled while they have work."""
    cmd = [str(BIN / "stereo-depth"), "run", "--source", "synthetic", "--namespace", NS,
           "--no-nearest-object", "--camera-param", "width:=128", "--camera-param", "height:=96",
           "--camera-param", "rate:=5.0", "--camera-param", "max_disparity:=16.0", "--param", "backend:=sgbm"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def targets(tmp: Path, bag: Path) -> list[Target]:
    sd = str(BIN / "stereo-depth")
    return [
        Target("depth_node", [str(BIN / "depth_node"), *_ros("sig_depth"), "-p", "backend:=sgbm"],
               ready="backend sgbm"),
        Target("nearest_object_node", [str(BIN / "nearest_object_node"), *_ros("sig_nearest")],
               ready="score_threshold"),
        Target("synthetic_camera", [str(BIN / "synthetic_camera"), *_ros("sig_camera", f"{NS}_cam"),
                                    "-p", "width:=96", "-p", "height:=64"], ready="synthetic stereo camera"),
        Target("evaluator_node", [str(BIN / "evaluator_node"), *_ros("sig_evaluator")], ready="evaluating"),
        Target("bag_replay", [str(BIN / "bag_replay"), str(bag), "--loop", "--prefix", f"{NS}_bag"],
               ready="playing"),
        Target("demo", [sd, "demo", "--out", str(tmp / "demo"), "--frames", "3", "--width", "96",
                        "--height", "64", "--max-disparity", "12", "--backend", "sgbm", "--rate", "5"],
               ready="publishing them"),
        Target("run", [sd, "run", "--source", "synthetic", "--namespace", f"{NS}_run", "--camera-param",
                       "width:=96", "--camera-param", "height:=64", "--param", "backend:=sgbm"],
               ready="source synthetic"),
        Target("replay", [sd, "replay", str(bag), "--loop", "--prefix", f"{NS}_replay"], ready="playing"),
        Target("record", [sd, "record", "--out", str(tmp / "rec"), "--frames", "1000", "--width", "64",
                          "--height", "48"], ready="record:"),
        Target("soak", [sd, "soak", "--frames", "5000", "--rate", "10", "--width", "96", "--height", "64",
                        "--loop-frames", "3", "--max-disparity", "12"], ready="soak: 5000 frames"),
    ]


NAMES = [t.name for t in targets(Path("."), Path("."))]


@pytest.mark.parametrize("name", NAMES)
def test_a_requested_stop_is_clean_at_any_moment(name, tmp_path, env, bag, feeder):
    rng = random.Random(f"{SEED}-{name}")
    # CI: one case per program, its moment drawn (each program starts in about 5 s, most of it
    # importing torch and rclpy); the long variant: ROUNDS cases at each moment
    moments = ["startup", "running"] * ROUNDS if ROUNDS else [rng.choice(("startup", "running"))]
    failures, timings = [], []
    for i, moment in enumerate(moments):
        case = random_case(rng, moment)
        target = next(t for t in targets(tmp_path / f"case{i}", bag) if t.name == name)
        (tmp_path / f"case{i}").mkdir()
        outcome = run_case(target, case, env)
        if outcome.problems:
            failures.append(outcome.report())
        elif outcome.stop_to_exit_s is not None:
            timings.append(outcome.stop_to_exit_s)
    print(f"{name}: {len(moments)} cases, seed {SEED}; signal to exit: "
          + ", ".join(f"{t:.1f} s" for t in timings))
    assert not failures, f"seed {SEED} (STEREO_DEPTH_SIGNAL_SEED repeats it)\n" + "\n\n".join(failures)
