"""StereoEstimator and the learned backend: devices, precision, numpy/tensor I/O, clear errors."""

import numpy as np
import pytest
import torch

from stereo_depth_ros.backends import BackendError
from stereo_depth_ros.backends.learned import LearnedBackend
from stereo_depth_ros.estimator import StereoEstimator, make_checkpoint, save_checkpoint, select_device

CFG = {"max_disparity": 32, "feat_half": 8, "feat_quarter": 16, "agg_channels": 16, "refine_channels": 8}


@pytest.fixture(scope="module")
def est():
    return StereoEstimator.untrained("fast", device="cpu", **CFG)


def test_tensor_and_numpy_interfaces_agree(est):
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (45, 61, 3), dtype=np.uint8)
    right = rng.integers(0, 255, (45, 61, 3), dtype=np.uint8)
    disp, conf = est.predict_numpy(left, right)
    assert disp.shape == (45, 61) and disp.dtype == np.float32
    assert conf.shape == (45, 61)
    lt = torch.from_numpy(left).permute(2, 0, 1).float() / 255
    rt = torch.from_numpy(right).permute(2, 0, 1).float() / 255
    out = est(lt, rt)  # (3, H, W) -> (H, W)
    assert out["disparity"].shape == (45, 61)
    np.testing.assert_allclose(out["disparity"].numpy(), disp, atol=1e-5)
    batched = est(torch.stack([lt, lt]), torch.stack([rt, rt]))
    assert batched["disparity"].shape == (2, 45, 61)


def test_bad_inputs_raise_clear_errors(est):
    with pytest.raises(ValueError, match="RGB"):
        est.predict_numpy(np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="differ"):
        est.predict_numpy(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="precision"):
        StereoEstimator.untrained("fast", precision="fp8", **CFG)


def test_cuda_request_without_cuda_falls_back_or_fails_when_strict(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    assert select_device("cuda").type == "cpu"
    assert "CUDA is not available" in caplog.text
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda", strict=True)


def test_bf16_autocast_on_cpu_runs(est):
    bf = StereoEstimator(est.model, "fast", CFG, device="cpu", precision="bf16")
    x = torch.rand(1, 3, 32, 48)
    out = bf(x, x)
    assert out["disparity"].dtype == torch.float32 and torch.isfinite(out["disparity"]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cuda(precision):
    e = StereoEstimator.untrained("fast", device="cuda", precision=precision, **CFG)
    x = torch.rand(1, 3, 64, 96, device="cuda")
    ref = StereoEstimator(e.model, "fast", CFG, device="cuda", precision="fp32")(x, x)["disparity"]
    out = e(x, x)["disparity"]
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - ref).abs().mean() < 0.5


def test_learned_backend_result(tmp_path):
    from stereo_depth_ros.models import build_model

    path = save_checkpoint(
        make_checkpoint(build_model("fast", **CFG), "fast", CFG, {"steps": 0}), tmp_path / "w.pt"
    )
    backend = LearnedBackend(model=str(path), device="cpu", max_disparity=20.0)
    assert backend.name == "learned" and backend.device.type == "cpu"
    left = np.random.default_rng(1).integers(0, 255, (33, 47, 3), dtype=np.uint8)
    res = backend.compute(left, left)
    assert res.shift.shape == (33, 47) and res.shift.dtype == torch.float32
    assert res.min_disparity == 0.0 and res.max_disparity == 20.0
    assert 0 < res.delta_d < 1
    assert res.valid_window == (0, 0, 47, 33)
    finite = res.shift[torch.isfinite(res.shift)]
    assert (finite <= 20.0).all() and (finite >= 0).all()
    with pytest.raises(BackendError, match="differ in size"):
        backend.compute(left, left[:, :40])


def test_learned_backend_without_weights_says_so(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        LearnedBackend(model=str(tmp_path / "absent.pt"), device="cpu")


def test_shipped_names_resolve_to_the_weights_folder(monkeypatch, tmp_path):
    from stereo_depth_ros import estimator

    shipped = estimator.WEIGHTS_DIR / "fast_cpu_candidate.pt"
    assert estimator.resolve_checkpoint("fast_cpu_candidate") == shipped
    monkeypatch.setattr(estimator, "WEIGHTS_DIR", tmp_path)  # a package without default weights
    with pytest.raises(BackendError, match="ships only once one beats SGBM"):
        LearnedBackend(model="default", device="cpu")


@pytest.mark.parametrize("arch,cfg", [("fast", CFG), ("dispnet", {"max_disparity": 32, "width": 4})])
def test_batchnorm_folding_keeps_the_output(arch, cfg):
    from stereo_depth_ros.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, **cfg).eval()
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    plain = StereoEstimator(model, arch, cfg, device="cpu", fuse=False)
    fused = StereoEstimator(model, arch, cfg, device="cpu", fuse=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # caller's model untouched
    x, y = torch.rand(1, 3, 40, 72), torch.rand(1, 3, 40, 72)
    assert torch.allclose(plain(x, y)["disparity"], fused(x, y)["disparity"], atol=1e-3)
