"""The acceptance check of a default stereo model: its criteria, and one end-to-end run on tiny data."""

import cv2
import numpy as np

from stereo_depth_ros.estimator import make_checkpoint, save_checkpoint
from stereo_depth_ros.models import build_model
from stereo_depth_ros.training.acceptance import _verdict, compare, format_table, main


def _row(**kw):
    base = {"epe": 1.0, "bad2": 0.2, "bad3": 0.2, "density": 0.8, "dense_epe": 2.0, "dense_bad2": 0.16,
            "dense_bad3": 0.14, "ref_epe": 1.0, "ref_bad3": 0.07, "time_ms": 10.0}
    return base | kw


def test_the_real_criteria():
    sgbm = _row()
    good = _row(dense_epe=1.5, dense_bad2=0.1, dense_bad3=0.08, ref_bad3=0.07)
    assert all(_verdict(sgbm, good, real=True).values())
    assert not _verdict(sgbm, good | {"dense_bad3": 0.09}, real=True)["dense bad-3 <= 0.6 x SGBM's"]
    assert not _verdict(sgbm, good | {"ref_bad3": 0.071}, real=True)["bad-3 on SGBM's pixels no worse"]
    synth = _verdict(sgbm, good | {"dense_bad3": 0.13}, real=False)
    assert synth == {"dense EPE lower": True, "dense bad-2 lower": True, "dense bad-3 lower": True}


def _scene(root, name, sample):
    folder = root / name
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "im0.png"), sample.left[:, :, ::-1])
    cv2.imwrite(str(folder / "im1.png"), sample.right[:, :, ::-1])
    h, w = sample.disparity.shape
    with open(folder / "disp0GT.pfm", "wb") as f:
        f.write(f"Pf\n{w} {h}\n-1.0\n".encode() + np.flipud(sample.disparity).astype("<f4").tobytes())
    (folder / "calib.txt").write_text(f"cam0=[100 0 {w / 2}; 0 100 {h / 2}; 0 0 1]\nndisp=48\n")


def test_one_run_side_by_side_on_tiny_data(tmp_path, capsys):
    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    rig = StereoRig.for_size(160, 120)
    for i in range(2):
        _scene(tmp_path / "real", f"s{i}", render_random(1_000_500 + i, rig, max_disparity=40))
    cfg = {"max_disparity": 64, "channels": [8, 8, 8], "bottleneck_blocks": 1}
    ckpt = save_checkpoint(make_checkpoint(build_model("guided", **cfg), "guided", cfg, {"steps": 0}),
                           tmp_path / "g.pt")
    results = compare(str(ckpt), str(tmp_path / "real"), count=1, width=160, height=120)
    real, synth = results["datasets"].values()
    assert real["frames"] == 2 and synth["frames"] == 1 and not real["failed"]
    # an untrained guided network keeps every SGBM value and fills the rest: dense everywhere
    assert real["learned"]["density"] == 1.0 and real["sgbm"]["density"] < 1.0
    assert set(real["checks"]) == {"dense EPE lower", "dense bad-2 lower", "dense bad-3 <= 0.6 x SGBM's",
                                   "bad-3 on SGBM's pixels no worse"}
    table = format_table(results)
    assert "SGBM (stereo_image_proc settings)" in table and "accepted as the default:" in table
    assert main([str(ckpt), "--real", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
