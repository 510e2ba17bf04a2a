"""Reports: summaries, JSON without NaN, side-by-side tables, figures drawn without matplotlib."""

import json
import math

import numpy as np
import pytest

from stereo_depth_ros.evaluation import report
from stereo_depth_ros.evaluation.metrics import stereo_metrics


def _run(name, offset):
    gt = np.full((10, 10), 10.0)
    run = report.ModelRun(name, backend="sgbm", device="cpu")
    for i in range(3):
        pred = gt + offset * (i + 1)
        run.frames.append({"item": f"f{i}", **stereo_metrics(pred, gt), "time_ms": 10.0 * (i + 1)})
    run.add_error("broken.png", "cannot read image broken.png")
    run.finish()
    return run


def test_summary_aggregates_frames_and_counts_failures():
    run = _run("a", 0.5)
    s = run.summary
    assert s["epe"] == pytest.approx(1.0)  # mean of 0.5, 1.0, 1.5 over equal pixel counts
    assert s["bad1"] == pytest.approx(1 / 3)  # only the 1.5 px frame is > 1 px
    assert s["time_ms"] == pytest.approx(20.0) and s["frames"] == 3 and s["failed"] == 1


def test_summary_weighs_depth_metrics_separately():
    frames = [{"epe": 1.0, "valid_pixels": 10, "depth_rmse": 2.0, "depth_valid_pixels": 1},
              {"epe": 3.0, "valid_pixels": 30, "depth_rmse": 4.0, "depth_valid_pixels": 3}]
    s = report.summarize(frames)
    assert s["epe"] == pytest.approx(2.5) and s["depth_rmse"] == pytest.approx(3.5)


def test_report_files_and_side_by_side_table(tmp_path):
    runs = [_run("sgbm", 0.5), _run("learned", 4.0)]
    runs[1].frames[0]["epe"] = math.nan
    runs[1].finish()
    paths = report.write_report(tmp_path, "test eval", runs, {"dataset": "synthetic"})
    data = json.loads(paths["json"].read_text())  # strict JSON: NaN became null
    assert [m["model"] for m in data["models"]] == ["sgbm", "learned"]
    assert data["models"][1]["frames"][0]["epe"] is None
    assert data["models"][0]["errors"][0]["item"] == "broken.png"
    md = paths["markdown"].read_text()
    assert "| sgbm |" in md and "| learned |" in md and "broken.png" in md
    header, rows = report.table_rows(runs, report.STEREO_COLUMNS)
    text = report.text_table(header, rows)
    assert text.splitlines()[0].split()[0] == "model" and len(text.splitlines()) == 4
    assert rows[1][header.index("bad-3 %")] == "100.00"


def test_figures_are_images_with_content(tmp_path):
    rng = np.random.default_rng(1)
    gt = rng.uniform(1, 20, (40, 60)).astype(np.float32)
    pred = gt + rng.normal(0, 1, gt.shape).astype(np.float32)
    pred[:5] = np.nan
    left = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    panel = report.frame_panel(left, gt, {"a": pred, "b": gt}, max_disp=20)
    assert panel.shape == (3 * (40 + 22), 120, 3) and panel.dtype == np.uint8
    # missing predictions are white in the error map of model a; model b has zero error (blue)
    err_a = panel[62 + 22: 62 + 22 + 5, 60:]
    assert np.all(err_a == 255)
    hist = report.error_histogram({"a": np.abs(pred - gt), "b": np.zeros(10)}, max_error=5, bins=10)
    assert hist.shape == (360, 720, 3)
    assert (hist != 255).any(axis=2).mean() > 0.01  # axes, curves and labels drawn
    # missing predictions (+inf errors) count in the last bin: with half missing, its curve sits
    # at 50 % of the pixels, the top of the plot (the y axis runs to 110 % of the highest bin)
    half = report.error_histogram({"a": np.r_[np.zeros(50), np.full(50, np.inf)]}, max_error=5, bins=10)
    only = report.error_histogram({"a": np.zeros(50)}, max_error=5, bins=10)
    assert not np.array_equal(half, only)
    blue = np.array(report._PALETTE[0])
    for image, high in ((half, True), (only, False)):
        column = image[:, 60 + 64 * 9 + 20]  # a column inside the last bin (plot x from 60, 64 px/bin)
        rows = np.flatnonzero(np.abs(column.astype(int) - blue).sum(axis=1) < 30)
        assert rows.size and (rows.min() < 180) == high  # plot spans y 30..312
    path = report.save_figure(tmp_path, "frame 1/a", hist)
    assert path.is_file() and path.name == "frame_1_a.png"
