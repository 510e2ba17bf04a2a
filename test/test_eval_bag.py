"""`stereo-depth eval-bag`: GT disparity or depth topics, GT-free photometric and left-right
measures, and clear errors for wrong topics and broken bags."""

import json

import numpy as np
import pytest
import torch

from stereo_depth_ros.backends.base import DisparityResult
from stereo_depth_ros.cli import main
from stereo_depth_ros.commands.record import frame_messages, record_bag
from stereo_depth_ros.data.synthetic import StereoRig, fronto_parallel_plane_scene, render
from stereo_depth_ros.evaluation import bag_io
from stereo_depth_ros.evaluation.bag_eval import (
    BagEvalOptions,
    evaluate_bag,
    left_right_consistency,
    photometric_error,
)

RIG = StereoRig.for_size(128, 96)


class _Constant:
    """Answers one disparity everywhere: exact for a fronto-parallel plane."""

    name = "constant"
    device = torch.device("cpu")

    def __init__(self, value):
        self.value = value

    def compute(self, left, right):
        h, w = left.shape[:2]
        return DisparityResult(torch.full((h, w), float(self.value)), None, 0.0, 64.0, 1.0, (0, 0, w, h))


@pytest.fixture(scope="module")
def plane_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "plane"
    depth = 2.0
    sample = render(fronto_parallel_plane_scene(depth, seed=3), RIG)
    with bag_io.BagWriter(path) as bag:
        for i in range(3):
            t = 10**18 + i * 10**8
            for topic, msg in frame_messages(sample, t):
                bag.write(topic, msg, t)
    return path, RIG.fx * RIG.baseline / depth


def test_exact_disparity_scores_zero_against_disparity_and_depth_gt(plane_bag):
    path, d = plane_bag
    models = [("right", _Constant(d)), ("off", _Constant(d + 2.0))]
    runs, _, info = evaluate_bag(path, models, BagEvalOptions(), progress=False)
    assert info["paired"] == 3 and info["gt_kind"] == "disparity" and not info["left_right_check"]
    right, off = (r.summary for r in runs)
    assert right["epe"] == pytest.approx(0.0, abs=1e-3) and right["bad1"] == 0.0
    assert off["epe"] == pytest.approx(2.0, abs=1e-3) and off["bad1"] == 1.0
    # the right disparity explains the right image far better than no disparity or a wrong one
    assert right["photo_l1"] < 0.5 * right["photo_identity"] and right["photo_l1"] < off["photo_l1"]
    runs, _, info = evaluate_bag(path, models[:1], BagEvalOptions(gt_topic="ground_truth/depth"),
                                 progress=False)
    s = runs[0].summary
    assert info["gt_kind"] == "depth" and s["epe"] == pytest.approx(0.0, abs=1e-3)
    assert s["depth_abs_rel"] == pytest.approx(0.0, abs=1e-4) and s["depth_delta1"] == 1.0


def test_without_gt_left_right_consistency_separates_right_from_wrong(plane_bag):
    path, d = plane_bag
    runs, _, info = evaluate_bag(path, [("c", _Constant(d))], BagEvalOptions(gt_topic=None), progress=False)
    s = runs[0].summary
    assert info["gt_topic"] == "none" and "epe" not in s
    assert s["lr_consistent"] > 0.9 and s["lr_mean_diff"] == pytest.approx(0.0, abs=1e-6)
    # a left disparity that disagrees with the right view's fails the check
    left = np.zeros((8, 16, 3), np.uint8)
    lr = left_right_consistency(_Constant(2.0), left, left, np.full((8, 16), 5.0, np.float32))
    assert lr["lr_consistent"] == 0.0 and lr["lr_mean_diff"] == pytest.approx(3.0)


def test_photometric_error_of_a_pure_shift():
    rng = np.random.default_rng(0)
    right = rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)
    left = np.zeros_like(right)
    left[:, 3:] = right[:, :-3]  # x_right = x_left - 3
    exact = photometric_error(left, right, np.full((20, 40), 3.0, np.float32))
    wrong = photometric_error(left, right, np.full((20, 40), 1.0, np.float32))
    assert exact["photo_l1"] < 1.0 < wrong["photo_l1"] and exact["photo_coverage"] == pytest.approx(37 / 40)


def test_eval_bag_command_on_a_recorded_bag(tmp_path, capsys):
    record_bag(tmp_path / "bag", frames=2, width=128, height=96, storage="mcap", max_disparity=40)
    out = tmp_path / "out"
    assert main(["eval-bag", str(tmp_path / "bag"), "--model", "sgbm", "--max-disp", "48",
                 "--out", str(out), "--figures", "1"]) == 0
    printed = capsys.readouterr().out
    assert "EPE" in printed and "frames paired: 2 of 2" in printed
    data = json.loads((out / "results.json").read_text())
    summary = data["models"][0]["summary"]
    assert summary["frames"] == 2 and 0 < summary["epe"] < 20 and summary["photo_l1"] > 0
    assert (out / "figures" / "frame_000.png").is_file()
    # wrong topic: clear message naming what the bag has
    assert main(["eval-bag", str(tmp_path / "bag"), "--model", "sgbm", "--left-topic", "cam/left",
                 "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "cam/left" in err and "/left/image_rect" in err


def test_eval_bag_command_on_broken_bags(tmp_path, capsys):
    assert main(["eval-bag", str(tmp_path / "missing"), "--model", "sgbm"]) == 2
    assert "missing" in capsys.readouterr().err
    record_bag(tmp_path / "bag", frames=1, width=64, height=48)
    db = next((tmp_path / "bag").glob("*.db3"))
    db.write_bytes(db.read_bytes()[:1000])
    assert main(["eval-bag", str(tmp_path / "bag"), "--model", "sgbm", "--out", str(tmp_path / "o")]) == 2
    assert str(tmp_path / "bag") in capsys.readouterr().err


def test_disparity_image_ground_truth_topic(tmp_path):
    """A stereo_msgs/DisparityImage GT topic (as a reference node would publish) round-trips and scores."""
    depth = 2.5
    sample = render(fronto_parallel_plane_scene(depth, seed=5), RIG)
    d = RIG.fx * RIG.baseline / depth
    geom = RIG.geometry()
    with bag_io.BagWriter(tmp_path / "bag", "mcap") as bag:
        for i in range(2):
            t = 10**18 + i * 10**8
            for topic, msg in frame_messages(sample, t):
                if not topic.startswith("/ground_truth"):
                    bag.write(topic, msg, t)
            gt = bag_io.disparity_image(sample.disparity, geom, t, "stereo_left_optical_frame", 0.0, 64.0)
            bag.write("/reference/disparity", gt, t)
    with bag_io.open_bag(tmp_path / "bag") as bag:
        assert bag.topics["/reference/disparity"].msgtype == bag_io.DISPARITY
        msg = next(m for _, _, m in bag.messages(["/reference/disparity"]))
        assert msg.t == pytest.approx(RIG.baseline) and msg.max_disparity == 64.0
    runs, _, info = evaluate_bag(tmp_path / "bag", [("c", _Constant(d))],
                                 BagEvalOptions(gt_topic="reference/disparity"), progress=False)
    assert info["gt_kind"] == "disparity" and info["paired"] == 2
    assert runs[0].summary["epe"] == pytest.approx(0.0, abs=1e-3)
