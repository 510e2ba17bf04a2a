"""The nearest-object training loop on a handful of tiny synthetic scenes (seconds on a CPU)."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.models.unet import UNetConfig
from stereo_depth_ros.nearest import load_unet_checkpoint
from stereo_depth_ros.training import nearest as tn

DATA_CFG = tn.NearestDataConfig(width=48, height=32, render_scale=1, disparity_source="gt")
NET_CFG = UNetConfig(base_channels=4, levels=3, dropout=0.0)


@pytest.fixture(scope="module")
def data():
    d = tn.build_dataset(range(0, 6), DATA_CFG, progress=False)
    assert d["label"].any(axis=(1, 2)).sum() >= 3, "tiny scenes should mostly have a nearest object"
    return d


def batch_loss(net, data):
    net.eval()
    x, y = tn.make_batch(data, np.arange(len(data["label"])), NET_CFG, 0.0, np.random.default_rng(0),
                         augment=False)
    with torch.no_grad():
        return float(tn.segmentation_loss(net(x), y, 0.5))


def test_samples_have_labels_from_the_nearest_instance(data):
    assert data["left"].shape == (6, 32, 48, 3)
    assert data["label"].dtype == bool
    gt = data["disp_gt"].astype(np.float32)
    assert np.isfinite(gt).all() and (gt > 0).all()
    # the labelled object is nearer (higher disparity) than the median of the frame
    for g, lab in zip(gt, data["label"], strict=True):
        if lab.any():
            assert np.median(g[lab]) > np.median(g)


def test_dice_loss_is_zero_for_a_perfect_prediction():
    t = torch.zeros(2, 1, 8, 8)
    t[:, :, 2:5, 2:5] = 1
    assert float(tn.dice_loss(t * 40 - 20, t)) < 1e-3
    assert float(tn.dice_loss(-t * 40 + 20, t)) > 0.9


def test_a_few_steps_reduce_the_loss_and_the_checkpoint_round_trips(data, tmp_path):
    cfg = tn.TrainConfig(steps=40, batch_size=6, lr=2e-2, gt_fraction=0.0, threads=1)
    torch.manual_seed(cfg.seed)
    before = batch_loss(tn.UNet(NET_CFG), data)
    net, meta = tn.train(tmp_path, DATA_CFG, NET_CFG, cfg, data, data, progress=False)
    after = batch_loss(net, data)
    assert after < 0.85 * before
    assert meta["steps"] == 40 and len(meta["history"]) == 40  # one epoch = one step here
    loaded, ckpt = load_unet_checkpoint(tmp_path / "model.pt")
    assert ckpt["arch"] == "unet" and ckpt["meta"]["input_size"] == [48, 32]
    assert ckpt["meta"]["training_data"]["disparity_source"] == "gt"
    assert 0.0 <= ckpt["meta"]["metrics"]["val_iou"] <= 1.0
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_continues_where_it_stopped(data, tmp_path, monkeypatch):
    cfg = tn.TrainConfig(steps=6, batch_size=4, lr=5e-3, gt_fraction=0.5, threads=1)
    full, _ = tn.train(tmp_path / "full", DATA_CFG, NET_CFG, cfg, data, data, progress=False)

    real_validate = tn.validate
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # steps 2, 4, 6 validate (an epoch is 2 steps): stop at step 4
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(tn, "validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tn.train(tmp_path / "cut", DATA_CFG, NET_CFG, cfg, data, data, progress=False)
    monkeypatch.setattr(tn, "validate", real_validate)
    messages = []
    resumed, meta = tn.train(tmp_path / "cut", DATA_CFG, NET_CFG, cfg, data, data, resume=True,
                             progress=False, log=messages.append)
    assert messages and "step 2" in messages[0]
    assert meta["steps"] == 6 and [h["step"] for h in meta["history"]] == [2, 4, 6]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    other = tn.TrainConfig(steps=7, batch_size=4, lr=5e-3, gt_fraction=0.5, threads=1)
    with pytest.raises(ValueError, match="different configuration"):
        tn.train(tmp_path / "cut", DATA_CFG, NET_CFG, other, data, data, resume=True, progress=False)


def test_compare_reports_both_methods(data, tmp_path):
    cfg = tn.TrainConfig(steps=3, batch_size=6, threads=1)
    tn.train(tmp_path, DATA_CFG, NET_CFG, cfg, data, data, progress=False)
    result = tn.compare(tmp_path / "model.pt", data, DATA_CFG, bands=(0.1, 0.2))
    methods = {(r["method"], r["disparity"]) for r in result["rows"]}
    assert methods == {("unet", "gt"), ("threshold", "gt")}  # source "gt" twice: both rows per method
    for r in result["rows"]:
        assert 0.0 <= r["iou"] <= r["dice"] <= 1.0
    assert "| threshold |" in tn.format_table(result)


def test_init_starts_from_a_trained_model(data, tmp_path):
    cfg = tn.TrainConfig(steps=2, batch_size=6, threads=1)
    first, _ = tn.train(tmp_path / "a", DATA_CFG, NET_CFG, cfg, data, data, progress=False)
    zero_lr = tn.TrainConfig(steps=1, batch_size=6, lr=1e-12, weight_decay=0.0, threads=1)
    second, meta = tn.train(tmp_path / "b", DATA_CFG, NET_CFG, zero_lr, data, data, progress=False,
                            init=tmp_path / "a" / "model.pt")
    assert meta["initialized_from"]["steps"] == 2 and meta["total_steps"] == 3
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        if "running" not in name and "num_batches" not in name:  # BatchNorm statistics move
            assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(ValueError, match="architecture"):
        tn.train(tmp_path / "c", DATA_CFG, UNetConfig(base_channels=2, levels=3), cfg, data, data,
                 progress=False, init=tmp_path / "a" / "model.pt")


def test_evaluate_only_on_another_disparity_source(data, tmp_path, capsys):
    """The same U-Net measured on another stereo backend's output: the source is the one asked
    for (here sgbm), not the one the checkpoint was trained on (gt)."""
    import json

    from stereo_depth_ros.cli import main

    cfg = tn.TrainConfig(steps=2, batch_size=4, threads=1)
    tn.train(tmp_path / "net", DATA_CFG, NET_CFG, cfg, data, data, progress=False)
    out = tmp_path / "eval"
    args = ["train-nearest", "--evaluate-only", str(tmp_path / "net" / "model.pt"), "--val-scenes", "2",
            "--test-scenes", "2", "--out", str(out), "--no-progress"]
    assert main(args + ["--disparity-source", "sgbm"]) == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert {r["disparity"] for r in rows} == {"sgbm", "gt"}
    assert "| unet | sgbm |" in capsys.readouterr().out
