"""`stereo-depth eval`: real models over a synthetic set and a tiny Middlebury folder, bad items
reported by name while the rest is still evaluated."""

import json

import cv2
import numpy as np
import pytest

from stereo_depth_ros.backends import make_backend
from stereo_depth_ros.cli import main
from stereo_depth_ros.evaluation.run_dataset import EvalItem, evaluate


class _Oracle:
    """A 'backend' that returns a known disparity, to check the scoring end to end."""

    name = "oracle"
    device = "cpu"

    def __init__(self, disparity, offset=0.0):
        self.disparity, self.offset = disparity, offset

    def compute(self, left, right):
        import torch

        from stereo_depth_ros.backends.base import DisparityResult

        shift = torch.from_numpy(self.disparity + self.offset)
        return DisparityResult(shift, None, 0.0, 64.0, 1.0, (0, 0, 8, 8))


def test_evaluate_scores_known_errors_and_keeps_going_after_bad_items(tmp_path):
    gt = np.full((8, 8), 10.0, np.float32)
    img = np.zeros((8, 8, 3), np.uint8)
    mask = np.ones((8, 8), bool)
    mask[:, :2] = False

    def bad():
        raise OSError("cannot read image /data/broken/im0.png")

    source = [("a", lambda: EvalItem("a", img, img, gt, mask)),
              ("broken", bad),
              ("small", lambda: EvalItem("small", img, img, gt[:4])),
              ("b", lambda: EvalItem("b", img, img, gt, mask))]
    runs, figures = evaluate(source, [("exact", _Oracle(gt)), ("off", _Oracle(gt, 2.5))], tmp_path,
                             progress=False)
    exact, off = runs
    assert exact.summary["epe"] == 0.0 and exact.summary["frames"] == 2
    assert off.summary["epe"] == pytest.approx(2.5) and off.summary["bad2"] == 1.0
    assert off.summary["bad3"] == 0.0 and off.summary["noc_valid_pixels"] == 2 * 48
    failed = {e["item"]: e["error"] for e in exact.errors}
    assert set(failed) == {"broken", "small"}
    assert "/data/broken/im0.png" in failed["broken"] and "differ in size" in failed["small"]
    assert {p.name for p in figures} >= {"error_histogram.png", "frame_000_a.png"}


def test_eval_command_synthetic_two_models_side_by_side(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["eval", "--dataset", "synthetic", "--count", "2", "--width", "160", "--height", "120",
               "--model", "sgbm", "--model", "sgbm", "--out", str(out), "--figures", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("sgbm") >= 2 and "EPE" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["seeds"] == "2000000..2000001"
    run = data["models"][0]
    assert run["summary"]["frames"] == 2 and len(run["frames"]) == 2
    # SGBM on textured synthetic scenes: it finds most of the scene, with bounded error
    assert 0.0 < run["summary"]["epe"] < 20.0 and run["summary"]["density"] > 0.3
    md = (out / "report.md").read_text()
    assert md.count("| sgbm |") == 6  # three views, two rows each
    for heading in ("## Dense: holes filled", "## Raw: holes count", "## On the pixels sgbm covers"):
        assert heading in md and heading[3:] in printed
    # the reference view of a model on its own pixels: no hole there, the covered pixels' error
    assert run["summary"]["ref_density"] == 1.0
    assert run["summary"]["ref_epe"] == pytest.approx(run["summary"]["epe"])
    assert (out / "figures" / "error_histogram.png").is_file()


def _write_pfm(path, data):
    h, w = data.shape
    with open(path, "wb") as f:
        f.write(f"Pf\n{w} {h}\n-1.0\n".encode())
        f.write(np.flipud(data).astype("<f4").tobytes())


def _middlebury_scene(root, name, sample, broken=False):
    scene = root / name
    scene.mkdir(parents=True)
    cv2.imwrite(str(scene / "im0.png"), sample.left[:, :, ::-1])
    if broken:
        (scene / "im1.png").write_bytes(b"this is not a png")
    else:
        cv2.imwrite(str(scene / "im1.png"), sample.right[:, :, ::-1])
    _write_pfm(scene / "disp0GT.pfm", sample.disparity)
    cv2.imwrite(str(scene / "mask0nocc.png"), np.where(sample.occlusion, 128, 255).astype(np.uint8))
    g = sample.rig
    (scene / "calib.txt").write_text(
        f"cam0=[{g.fx} 0 {g.cx}; 0 {g.fy} {g.cy}; 0 0 1]\ncam1=[{g.fx} 0 {g.cx}; 0 {g.fy} {g.cy}; 0 0 1]\n"
        f"doffs=0\nbaseline={g.baseline * 1000}\nwidth={g.width}\nheight={g.height}\nndisp=64\n")


def test_eval_command_middlebury_folder_with_a_corrupt_item(tmp_path, capsys):
    pytest.importorskip("stereo_depth_ros.data.readers")
    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    rig = StereoRig.for_size(160, 120)
    root = tmp_path / "mb"
    for i, name in enumerate(["Alpha-perfect", "Bravo-perfect", "Charlie-perfect"]):
        _middlebury_scene(root, name, render_random(1_000_000 + i, rig, max_disparity=40), broken=(i == 1))
    out = tmp_path / "out"
    rc = main(["eval", "--dataset", "middlebury", "--root", str(root), "--model", "sgbm",
               "--max-disp", "48", "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "Bravo" in captured.err
    data = json.loads((out / "results.json").read_text())
    run = data["models"][0]
    assert run["summary"]["frames"] == 2 and run["summary"]["failed"] == 1
    assert "Bravo" in run["errors"][0]["error"]
    assert 0.0 < run["summary"]["epe"] < 20.0


def test_three_views_and_scene_ranges_end_to_end(tmp_path):
    """A dense model, a sparse one and the reference's pixels, with known answers; each item is
    searched over its own range."""
    gt = np.full((6, 10), 10.0, np.float32)
    sparse = gt.copy()
    sparse[:, 3:6] = np.nan  # a hole inside the row: filled with the smaller end, here exact
    sparse[:, :2] = 30.0  # wrong where it answers
    img = np.zeros((6, 10, 3), np.uint8)
    ranges = []

    class Ranged(_Oracle):
        def for_range(self, max_disparity):
            ranges.append(max_disparity)
            return self

    source = [("a", lambda: EvalItem("a", img, img, gt, None, 48.0))]
    runs, _ = evaluate(source, [("sparse", Ranged(sparse)), ("dense", _Oracle(gt, 1.5))], progress=False,
                       reference=0)
    sp, de = (r.summary for r in runs)
    assert ranges == [48.0]
    assert sp["density"] == pytest.approx(0.7) and sp["bad3"] == pytest.approx(0.5)  # 2 wrong + 3 holes
    assert sp["dense_bad3"] == pytest.approx(0.2) and sp["dense_density"] == 1.0
    assert sp["ref_bad3"] == pytest.approx(2 / 7) and sp["ref_valid_pixels"] == 42
    assert de["bad3"] == 0.0 and de["bad1"] == 1.0 and de["ref_epe"] == pytest.approx(1.5)
    assert de["dense_epe"] == pytest.approx(1.5)


def test_mean_over_scenes_or_pooled_pixels():
    big, small = np.full((20, 20), 10.0, np.float32), np.full((2, 2), 10.0, np.float32)
    img_big, img_small = np.zeros((20, 20, 3), np.uint8), np.zeros((2, 2, 3), np.uint8)

    class PerSize(_Oracle):
        def compute(self, left, right):
            self.disparity = big + 1.0 if left.shape[0] == 20 else small + 3.0
            return super().compute(left, right)

    source = [("big", lambda: EvalItem("big", img_big, img_big, big)),
              ("small", lambda: EvalItem("small", img_small, img_small, small))]
    per_scene = evaluate(source, [("m", PerSize(None))], progress=False, by_pixels=False)[0][0].summary
    pooled = evaluate(source, [("m", PerSize(None))], progress=False, by_pixels=True)[0][0].summary
    assert per_scene["epe"] == pytest.approx(2.0)
    assert pooled["epe"] == pytest.approx((400 * 1 + 4 * 3) / 404)


def test_eval_command_bad_arguments_are_clear(tmp_path, capsys):
    assert main(["eval", "--dataset", "kitti", "--root", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["eval", "--dataset", "synthetic", "--count", "1", "--model", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_sgbm_backend_is_what_eval_builds():
    from stereo_depth_ros.evaluation.models import build_backend, sgbm_range

    label, backend = build_backend("sgbm", max_disp=40)
    assert label == "sgbm" and backend.params.disparity_range == sgbm_range(40) == 48
    assert type(backend) is type(make_backend("sgbm"))
