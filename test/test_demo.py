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


def test_demo_defaults_time_the_node_alone_and_cover_the_image(tmp_path, capsys):
    """The README's first command, fewer frames: the default scene and search range leave the
    default backend little to miss, and the summary says what each number is."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "3", "--dds", "loopback"]) == 0
    printed = capsys.readouterr().out.splitlines()
    report = json.loads((out / "metrics.json").read_text())
    assert (report["width"], report["height"], report["max_disparity"]) == (320, 240, 24.0)
    assert report["aggregate"]["density"] > 0.75 and report["aggregate"]["epe"] < 1.5
    # rendered before the depth node existed; the node's own per-frame medians, model included
    assert any(ln.startswith("demo: rendered in") for ln in printed)
    times = report["node_ms_per_frame"]
    assert times["frames"] == 3 and times["work"] >= times["model"] > 0  # work >= model in every frame
    lines = [ln for ln in printed if ln.startswith("demo: ")]
    accuracy = next(ln for ln in lines if ln.startswith("demo: accuracy of"))
    assert "pixels have a disparity" in accuracy and "counts as bad" in accuracy
    timing = next(ln for ln in lines if ln.startswith("demo: the depth node's time per frame"))
    assert f"{times['work']:.1f} ms, of which the model {times['model']:.1f} ms" in timing
    assert any(ln.startswith("demo: camera 10 Hz, node output") for ln in lines)
