"""`stereo-depth eval-bag`: GT disparity or depth topics, GT-free photometric and left-right
measures, and clear errors for wrong topics and broken bags."""

import json
import math

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


# --- AirSim-named bags: --source and how the ground truth is read -----------------------------

def _summary(out_dir):
    return json.loads((out_dir / "results.json").read_text())["models"][0]["summary"]


@pytest.fixture(scope="module")
def airsim_and_synthetic_bags(tmp_path_factory):
    """The same three frames twice: as AirSim records them (bgr8, P[3] = 0, right +25 ms,
    DepthPlanar) and as the synthetic camera does (rgb8, baseline in P, exact disparity GT)."""
    from stereo_depth_ros.commands.record import airsim_baseline

    root = tmp_path_factory.mktemp("airsim")
    kwargs = dict(frames=3, width=160, height=120, max_disparity=24.0, seed=19, baseline=airsim_baseline(),
                  start_ns=1_600_000_000 * 10**9)
    record_bag(root / "airsim", layout="airsim", **kwargs)
    record_bag(root / "synthetic", **kwargs)
    return root / "airsim", root / "synthetic"


def test_eval_bag_source_airsim_reads_depth_planar_as_depth(airsim_and_synthetic_bags, tmp_path, capsys):
    airsim, synthetic = airsim_and_synthetic_bags
    assert main(["eval-bag", str(airsim), "--source", "airsim", "--model", "sgbm", "--max-disp", "32",
                 "--out", str(tmp_path / "a"), "--figures", "0"]) == 0
    printed = capsys.readouterr().out
    assert "source airsim: left /airsim_node/drone_1/front_left/Scene" in printed
    assert "pairing tolerance 0.1 s, baseline 0.25 m" in printed
    assert "frames paired: 3 of 3" in printed
    line = next(ln for ln in printed.splitlines() if ln.startswith("ground truth: /airsim_node"))
    assert "DepthPlanar (32FC1) read as planar depth (Z) in metres" in line
    assert "AirSim's planar depth" in line
    # the same frames against their exact disparity: the same scores (sub-pixel GT conversion only)
    assert main(["eval-bag", str(synthetic), "--model", "sgbm", "--max-disp", "32", "--out",
                 str(tmp_path / "s"), "--figures", "0"]) == 0
    via_depth, exact = _summary(tmp_path / "a"), _summary(tmp_path / "s")
    assert via_depth["frames"] == exact["frames"] == 3
    assert via_depth["epe"] == pytest.approx(exact["epe"], abs=0.02) and exact["epe"] < 1.5
    assert via_depth["bad3"] == pytest.approx(exact["bad3"], abs=0.01)
    # depth GT: depth is scored too
    assert math.isfinite(via_depth["depth_abs_rel"]) and "depth_abs_rel" not in exact
    # read as disparity (the old case-sensitive name test), SGBM looks broken: --gt-kind forces it
    assert main(["eval-bag", str(airsim), "--source", "airsim", "--model", "sgbm", "--max-disp", "32",
                 "--gt-kind", "disparity", "--out", str(tmp_path / "d"), "--figures", "0"]) == 0
    assert "--gt-kind disparity says so" in capsys.readouterr().out
    assert _summary(tmp_path / "d")["epe"] > 5 * exact["epe"]


def test_eval_bag_source_options_can_be_overridden_and_bad_sources_are_named(airsim_and_synthetic_bags,
                                                                              tmp_path, capsys):
    airsim, _ = airsim_and_synthetic_bags
    # exact pairing instead of the source's 0.1 s: the right camera's +25 ms leaves nothing paired
    assert main(["eval-bag", str(airsim), "--source", "airsim", "--model", "sgbm", "--sync-tolerance", "0",
                 "--out", str(tmp_path / "o"), "--figures", "0"]) == 1
    assert "frames paired: 0 of 3" in capsys.readouterr().out
    assert main(["eval-bag", str(airsim), "--source", "nosuchcamera", "--model", "sgbm"]) == 2
    assert "nosuchcamera" in capsys.readouterr().err
    assert main(["eval-bag", str(airsim), "--source", "airsim", "--arg", "wheels:=4", "--model", "sgbm"]) == 2
    assert "wheels" in capsys.readouterr().err
    # another vehicle name: the source's topics follow it, and the bag does not have them
    assert main(["eval-bag", str(airsim), "--source", "airsim", "--arg", "vehicle:=drone_2", "--model",
                 "sgbm", "--out", str(tmp_path / "v")]) == 2
    assert "/airsim_node/drone_2/front_left/Scene" in capsys.readouterr().err


def test_ground_truth_kind_from_name_and_encoding():
    from stereo_depth_ros.evaluation.ground_truth import GroundTruthError, interpret

    cases = {
        ("/airsim_node/drone_1/front_left/DepthPlanar", "32FC1"): "depth",
        ("/airsim_node/drone_1/front_left/depthplanar", "32FC1"): "depth",
        ("/airsim_node/car/front_left_DepthPlanar/image", "32FC1"): "depth",  # Cosys-AirSim
        ("/airsim_node/drone_1/front_left/DepthPerspective", "32FC1"): "perspective",
        ("/camera/Depth/image_rect_raw", "16UC1"): "depth",
        ("/ground_truth/disparity", "32FC1"): "disparity",
        ("/ground_truth/Disparity", "32FC1"): "disparity",
        ("/gt/image", "16UC1"): "depth",
        ("/gt/image", "32FC1"): "disparity",
    }
    for (topic, encoding), kind in cases.items():
        meaning = interpret(topic, encoding)
        assert meaning.kind == kind, (topic, encoding, meaning)
        assert meaning.why and "--gt-kind" in meaning.why
    assert "millimetres" in interpret("/gt/image", "16UC1").describe("/gt/image", "16UC1")
    assert interpret("/x/DepthPlanar", "32FC1", requested="disparity").kind == "disparity"
    assert interpret("/x/DepthPlanar", "32FC1", disparity_message=True, requested="depth").kind == "disparity"
    with pytest.raises(GroundTruthError, match="DisparityNormalized"):
        interpret("/airsim_node/drone_1/front_left/DisparityNormalized", "32FC1")


def test_perspective_ground_truth_is_turned_into_planar_depth(tmp_path):
    """AirSim's DepthPerspective (distance along the ray) scores like the planar depth it comes from."""
    from stereo_depth_ros.evaluation.ground_truth import planar_depth

    depth = 2.0
    sample = render(fronto_parallel_plane_scene(depth, seed=3), RIG)
    geom = RIG.geometry()
    u = (np.arange(RIG.width) - geom.cx) / geom.fx
    v = (np.arange(RIG.height) - geom.cy) / geom.fy
    distance = (sample.depth * np.sqrt(1 + u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)
    assert np.allclose(planar_depth(distance, geom), sample.depth, rtol=1e-5)
    with bag_io.BagWriter(tmp_path / "bag") as bag:
        for i in range(2):
            t = 10**18 + i * 10**8
            for topic, msg in frame_messages(sample, t):
                bag.write(topic, msg, t)
            bag.write("/cam/DepthPerspective", bag_io.numpy_to_image(distance, "32FC1", t, "left"), t)
    d = RIG.fx * RIG.baseline / depth
    runs, _, info = evaluate_bag(tmp_path / "bag", [("c", _Constant(d))],
                                 BagEvalOptions(gt_topic="/cam/DepthPerspective"), progress=False)
    assert info["gt_kind"] == "perspective" and "distance along each pixel's ray" in info["gt_interpretation"]
    assert runs[0].summary["epe"] == pytest.approx(0.0, abs=1e-3)
    # read as if it were planar depth, the off-axis pixels come out wrong
    options = BagEvalOptions(gt_topic="/cam/DepthPerspective", gt_kind="depth")
    runs, _, _ = evaluate_bag(tmp_path / "bag", [("c", _Constant(d))], options, progress=False)
    assert runs[0].summary["epe"] > 0.05
