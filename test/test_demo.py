"""`stereo-depth demo` end to end at a small size: real rclpy/DDS, files and real numbers."""

import json
import math

import numpy as np
import pytest

from stereo_depth_ros.cli import main
from stereo_depth_ros.pointcloud import read_ply

pytestmark = pytest.mark.ros


def test_demo_runs_and_writes_results(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--frames", "3", "--width", "128", "--height", "96",
               "--backend", "sgbm", "--max-disparity", "32", "--dds", "loopback", "--timeout", "90"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "EPE" in printed and "bad-3" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["backend"] == "sgbm" and report["frames"] == 3
    assert (report["width"], report["height"]) == (128, 96)
    agg = report["aggregate"]
    for key in ("epe", "bad3", "d1_all", "density"):
        assert math.isfinite(agg[key])
    assert 0 < agg["epe"] < 10 and 0 <= agg["bad3"] <= 1 and agg["density"] > 0.3
    assert agg["valid_pixels"] == 3 * 128 * 96
    assert len(report["per_frame"]) == 3 and report["fps"] > 0
    assert report["mean_stage_s"]["model"] > 0
    for i in range(3):
        for name in ("left", "disparity", "error"):
            assert (out / f"{name}_{i:04d}.png").stat().st_size > 0
    xyz, rgb = read_ply(out / "cloud.ply")
    assert len(xyz) == report["cloud"]["points"] > 0 and rgb is not None
    assert np.isfinite(xyz).all() and (xyz[:, 2] > 0).all()
