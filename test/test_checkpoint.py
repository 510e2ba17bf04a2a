"""Checkpoints: self-describing round trip; anything tampered, unknown, corrupt or executable is refused."""

import os
import pickle

import pytest
import torch

from stereo_depth_ros.estimator import (
    CheckpointError,
    StereoEstimator,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from stereo_depth_ros.models import build_model

CFG = {"max_disparity": 32, "feat_half": 8, "feat_quarter": 16, "agg_channels": 16, "refine_channels": 8}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("fast", **CFG)
    meta = {"steps": 7, "metrics": {"synthetic_epe": 1.5}, "training_data": "synthetic seeds [0, 4)"}
    path = save_checkpoint(make_checkpoint(model, "fast", CFG, meta), tmp_path / "m.pt")
    return model, path


def test_round_trip_restores_weights_and_description(saved):
    model, path = saved
    ckpt = load_checkpoint(path)
    assert ckpt["arch"] == "fast" and ckpt["config"] == CFG
    meta = ckpt["meta"]
    assert meta["steps"] == 7 and meta["metrics"]["synthetic_epe"] == 1.5
    for key in ("date", "package_version", "command", "training_data"):
        assert meta[key]
    restored = model_from_checkpoint(ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, restored.state_dict()[k]), k
    est = StereoEstimator.from_checkpoint(path, device="cpu")
    x = torch.rand(1, 3, 40, 56)
    model.eval()
    with torch.no_grad():
        ref = model(x, x)["disparity"]
    assert torch.allclose(est(x, x)["disparity"], ref, atol=1e-5)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_truncated_file_is_refused(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(bad)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)


def test_code_executing_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "stereo_depth_ros.checkpoint", "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt.*execute code"):
        load_checkpoint(evil)
    plain = tmp_path / "plain_pickle.pt"
    plain.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="plain_pickle.pt"):
        load_checkpoint(plain)
    assert not marker.exists()


def test_unknown_arch_and_foreign_dicts_are_refused(saved, tmp_path):
    _, path = saved
    ckpt = torch.load(path, weights_only=True)
    ckpt["arch"] = "resnet9000"
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet9000'"):
        load_checkpoint(tmp_path / "unknown.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a stereo_depth_ros checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_tampered_weights_are_refused(saved, tmp_path):
    _, path = saved
    ckpt = torch.load(path, weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    missing = dict(ckpt, state_dict={k: v for k, v in ckpt["state_dict"].items() if k != key})
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt.*missing \["):
        StereoEstimator.from_checkpoint(tmp_path / "missing.pt", device="cpu")
    conv = next(k for k, v in ckpt["state_dict"].items() if v.dim() == 4)
    reshaped = dict(ckpt, state_dict=dict(ckpt["state_dict"], **{conv: torch.zeros(1, 1, 1, 1)}))
    torch.save(reshaped, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="shape.pt.*has shape"):
        StereoEstimator.from_checkpoint(tmp_path / "shape.pt", device="cpu")
    bad_cfg = dict(ckpt, config={**CFG, "feat_quarter": 24})
    torch.save(bad_cfg, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="config.pt"):
        StereoEstimator.from_checkpoint(tmp_path / "config.pt", device="cpu")
