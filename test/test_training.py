"""Training loop: runs from a tiny config, is deterministic with a seed, and resumes exactly."""

import csv

import pytest
import torch

from stereo_depth_ros.cli import main as cli_main
from stereo_depth_ros.estimator import StereoEstimator, load_checkpoint
from stereo_depth_ros.training.loop import Trainer, TrainingError, load_config
from stereo_depth_ros.training.losses import dispnet_weights


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    cfg = load_config("tiny_test")
    cache = str(tmp_path_factory.mktemp("cache"))  # scenes render once for the whole module
    cfg["data"]["train"]["cache_dir"] = cache
    cfg["data"]["val"]["synthetic"]["cache_dir"] = cache
    return cfg


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def test_tiny_run_writes_logs_and_a_loadable_checkpoint(config, tmp_path):
    result = Trainer(config, tmp_path / "run", device="cpu", command="test").run(progress=False)
    assert result.steps == 6
    ckpt = load_checkpoint(result.final_checkpoint)
    assert ckpt["meta"]["steps"] == 6 and ckpt["meta"]["command"] == "test"
    assert "synthetic" in ckpt["meta"]["training_data"]
    assert "optimizer" not in ckpt  # the shippable file carries no optimizer state
    assert "synthetic_epe" in ckpt["meta"]["metrics"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    val = list(csv.DictReader(open(tmp_path / "run" / "val_log.csv")))
    assert [int(r["step"]) for r in val] == [3, 6]
    est = StereoEstimator.from_checkpoint(result.final_checkpoint, device="cpu")
    assert est.meta["steps"] == 6


def test_same_seed_same_weights(config, tmp_path):
    a = Trainer(config, tmp_path / "a", device="cpu").run(steps=4, progress=False)
    b = Trainer(config, tmp_path / "b", device="cpu").run(steps=4, progress=False)
    wa, wb = _weights(a.final_checkpoint), _weights(b.final_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_exactly(config, tmp_path):
    full = Trainer(config, tmp_path / "full", device="cpu").run(steps=4, progress=False)
    Trainer(config, tmp_path / "split", device="cpu").run(steps=4, progress=False, stop_at=2)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["meta"]["steps"] == 2
    resumed = Trainer(config, tmp_path / "split", device="cpu").run(steps=4, resume=True, progress=False)
    assert resumed.steps == 4
    wf, wr = _weights(full.final_checkpoint), _weights(resumed.final_checkpoint)
    assert all(torch.allclose(wf[k].float(), wr[k].float(), atol=1e-6) for k in wf)
    with pytest.raises(TrainingError, match="same --steps"):
        Trainer(config, tmp_path / "split", device="cpu").run(steps=8, resume=True, progress=False)


def test_config_errors_are_clear(config):
    with pytest.raises(TrainingError, match="not found"):
        load_config("no_such_config")
    with pytest.raises(TrainingError, match="unknown train option"):
        load_config({"train": {"stepz": 3}})
    bad = {**config, "data": {**config["data"], "val": {"synthetic": {"seed_start": 0, "scenes": 1}}}}
    with pytest.raises(TrainingError, match="overlap"):
        Trainer(bad, "unused", device="cpu")


def test_dispnet_schedule_moves_weight_to_the_finest_scale():
    early, late = dispnet_weights(0, 100), dispnet_weights(99, 100)
    assert early[-1] == max(early) and early[0] == 0  # coarse first
    assert late[0] == max(late) and late[-1] == 0  # fine last


def test_train_command(tmp_path, config, monkeypatch, capsys):
    import yaml

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    rc = cli_main(
        ["train", "--config", str(cfg_path), "--out", str(tmp_path / "cmd"), "--steps", "2", "--no-progress"]
    )
    assert rc == 0
    assert "final weights" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "cmd" / "final.pt")["meta"]["command"].startswith("stereo-depth train")
    assert cli_main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize(
    "arch,model",
    [
        ("dispnet", {"max_disparity": 32, "width": 4}),
        ("stereoconvnet", {"max_disparity": 32, "width": 4, "depth": 3}),
    ],
)
def test_other_archs_train_through_the_same_loop(config, tmp_path, arch, model):
    cfg = {**config, "arch": arch, "model": model}
    result = Trainer(cfg, tmp_path / arch, device="cpu").run(steps=2, progress=False)
    ckpt = load_checkpoint(result.final_checkpoint)
    assert ckpt["arch"] == arch and ckpt["meta"]["steps"] == 2
    assert StereoEstimator.from_checkpoint(result.final_checkpoint, device="cpu").arch == arch


def test_training_on_a_dataset_read_from_disk(config, tmp_path):
    """data.train.dataset trains through the data package's readers (here a tiny Middlebury tree)."""
    import cv2
    import numpy as np

    from stereo_depth_ros.data.formats import write_pfm
    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    s = render_random(5, StereoRig.for_size(96, 64), max_disparity=24.0)
    scene = tmp_path / "mb" / "scene1"
    scene.mkdir(parents=True)
    cv2.imwrite(str(scene / "im0.png"), cv2.cvtColor(s.left, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(scene / "im1.png"), cv2.cvtColor(s.right, cv2.COLOR_RGB2BGR))
    gt = s.disparity.copy()
    gt[:5] = np.inf  # unknown ground truth is ignored by the loss
    write_pfm(scene / "disp0GT.pfm", gt)
    (scene / "calib.txt").write_text(
        "cam0=[100 0 48; 0 100 32; 0 0 1]\ncam1=[100 0 48; 0 100 32; 0 0 1]\ndoffs=0\nbaseline=100\n"
        "width=96\nheight=64\nndisp=32\n"
    )
    cfg = {
        **config,
        "data": {
            **config["data"],
            "train": {"dataset": {"kind": "middlebury", "root": str(tmp_path / "mb")}},
        },
    }
    result = Trainer(cfg, tmp_path / "run", device="cpu").run(steps=2, progress=False)
    assert "middlebury dataset" in load_checkpoint(result.final_checkpoint)["meta"]["training_data"]


def test_init_from_a_checkpoint_starts_from_its_weights(config, tmp_path):
    first = Trainer(config, tmp_path / "first", device="cpu").run(steps=2, progress=False)
    trainer = Trainer(config, tmp_path / "second", device="cpu")
    trainer.init_from = str(first.final_checkpoint)
    second = trainer.run(steps=1, progress=False)
    meta = load_checkpoint(second.final_checkpoint)["meta"]
    assert meta["initialised_from"] == str(first.final_checkpoint)
    other = {**config, "model": {**config["model"], "agg_channels": 8}}
    bad = Trainer(other, tmp_path / "third", device="cpu")
    bad.init_from = str(first.final_checkpoint)
    with pytest.raises(TrainingError, match="different model"):
        bad.run(steps=1, progress=False)
