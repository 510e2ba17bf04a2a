"""``stereo-depth dds-bench`` runs across processes and prints its figures (a command, not a timed
test: nothing here asserts a delivery rate)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from stereo_depth_ros.commands.dds_bench import format_report

pytestmark = pytest.mark.ros


def _report(delivered: int, outputs: int) -> dict:
    return {"config": {"width": 1280, "height": 720, "rate": 30.0, "publisher_reliability": "reliable",
                       "input_reliability": "best_effort", "subscriber_reliability": "reliable"},
            "profile": "/p.xml",
            "node": {"published": 100, "seconds": 3.3, "achieved_hz": 30.0, "late": 0,
                     "pairs_delivered": delivered, "received": {"left/image_rect": delivered},
                     "unsynchronized": 0, "processed": 4, "dropped_busy": delivered - 4,
                     "outputs": {"disparity": {"received": 4, "of": 4}}},
            "outputs": {"published": 100, "seconds": 3.4, "achieved_hz": 29.0, "late": 1,
                        "outputs": {"points2": {"received": outputs, "of": 100}}}}


def test_the_goal_is_met_only_when_every_ratio_is_at_least_99_percent():
    text, ok = format_report(_report(99, 99))
    assert ok and "pairs delivered to the node: 99/100 (99.0 %)" in text and "points2 99/100" in text
    assert not format_report(_report(98, 100))[1]
    assert not format_report(_report(100, 98))[1]


def test_dds_bench_runs_its_three_stages_across_processes(tmp_path):
    out = tmp_path / "dds.json"
    proc = subprocess.run([sys.executable, "-m", "stereo_depth_ros.cli", "dds-bench", "--width", "96",
                           "--height", "64", "--frames", "6", "--rate", "5", "--dds", "loopback",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    match = re.search(r"pairs delivered to the node: (\d+)/6", proc.stdout)
    assert match and int(match.group(1)) <= 6, proc.stdout
    assert re.search(r"outputs stage: 6 sets published", proc.stdout), proc.stdout
    match = re.search(r"inputs stage: 6 sets published.*\n  pairs delivered: (\d+)/6", proc.stdout)
    assert match and int(match.group(1)) <= 6, proc.stdout
    report = json.loads(out.read_text())
    assert report["profile"].endswith("fastdds_loopback.xml")
    assert set(report["outputs"]["outputs"]) == {"disparity", "depth", "points2"}
    for figures in report["outputs"]["outputs"].values():
        assert 0 <= figures["received"] <= figures["of"] == 6


def test_bad_arguments_are_one_line_errors():
    proc = subprocess.run([sys.executable, "-m", "stereo_depth_ros.cli", "dds-bench", "--stages", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("stereo-depth dds-bench: ")
    assert "Traceback" not in proc.stderr
