"""Stereo networks: output shapes and padding at odd sizes, registry errors, and learning on the generator."""

import pytest
import torch

from stereo_depth_ros.models import UnknownModelError, build_model, model_names
from stereo_depth_ros.models.common import convex_upsample, correlation_volume, pad_to_multiple, soft_argmin

TINY = {
    "fast": {
        "max_disparity": 32,
        "feat_half": 8,
        "feat_quarter": 16,
        "agg_channels": 16,
        "refine_channels": 8,
    },
    "dispnet": {"max_disparity": 32, "width": 4},
    "dispnetc": {"max_disparity": 32, "width": 4},
    "stereoconvnet": {"max_disparity": 32, "width": 4, "depth": 3},
}


def setup_module(_):
    torch.set_num_threads(2)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("size", [(37, 51), (64, 96), (17, 130)])
def test_shapes_at_odd_sizes(name, size):
    torch.manual_seed(0)
    model = build_model(name, **TINY[name]).eval()
    left, right = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    with torch.no_grad():
        out = model(left, right)
    assert out["disparity"].shape == (2, *size)
    assert out["disparity"].dtype == torch.float32
    assert torch.isfinite(out["disparity"]).all()
    if out["confidence"] is not None:
        assert out["confidence"].shape == (2, *size)
        assert (out["confidence"] >= 0).all() and (out["confidence"] <= 1).all()
    assert "predictions" not in out  # only in training mode

    model.train()
    out = model(left, right)
    assert all(p.shape == (2, *size) for p in out["predictions"])
    assert len(out["predictions"]) == {"fast": 3, "dispnet": 6, "dispnetc": 6, "stereoconvnet": 1}[name]


def test_every_stereo_arch_is_covered():
    assert set(TINY) <= set(model_names())


def test_registry_errors_name_the_problem():
    with pytest.raises(UnknownModelError, match="unknown model architecture 'nope'.*fast"):
        build_model("nope")
    with pytest.raises(UnknownModelError, match="does not take bogus"):
        build_model("fast", bogus=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        build_model("fast", max_disparity=30)


def test_mismatched_inputs_are_rejected():
    model = build_model("fast", **TINY["fast"]).eval()
    with pytest.raises(ValueError, match="differ in shape"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))


def test_padding_keeps_pixel_coordinates():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (8, 8) and size == (5, 7)
    assert torch.equal(padded[..., :5, :7], x)


def test_correlation_peaks_at_the_true_shift():
    torch.manual_seed(1)
    right = torch.randn(1, 64, 6, 40)
    left = torch.zeros_like(right)
    left[..., 5:] = right[..., :-5]  # left(x) = right(x - 5): disparity 5
    vol = correlation_volume(left, right, 12)
    assert vol.shape == (1, 12, 6, 40)
    assert (vol[0, :, :, 12:].argmax(0) == 5).all()
    grouped = correlation_volume(left, right, 12, groups=4)
    assert grouped.shape == (1, 48, 6, 40)
    assert (grouped.view(4, 12, 6, 40)[:, :, :, 12:].sum(0).argmax(0) == 5).all()


def test_soft_argmin_is_sub_pixel():
    logits = torch.full((1, 8, 1, 1), -50.0)
    logits[0, 3] = 0.0
    logits[0, 4] = 0.0
    disp, prob = soft_argmin(logits)
    assert disp.item() == pytest.approx(3.5, abs=1e-4)
    assert prob.sum().item() == pytest.approx(1.0)


def test_convex_upsample_of_constant_scales_values():
    disp = torch.full((1, 1, 4, 5), 3.0)
    up = convex_upsample(disp, torch.randn(1, 36, 4, 5), 2)
    assert up.shape == (1, 1, 8, 10)
    # interior pixels: a convex combination of equal values (borders see zero padding)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 6.0))


def test_a_few_steps_on_the_generator_reduce_the_loss():
    from stereo_depth_ros.training.data import AugmentConfig, SyntheticConfig, SyntheticStereoDataset
    from stereo_depth_ros.training.losses import fast_loss

    torch.manual_seed(0)
    synth = SyntheticConfig(scenes=2, width=80, height=64, max_disparity=(16.0, 24.0))
    ds = SyntheticStereoDataset(
        synth, AugmentConfig(crop=(64, 48), color=0.0, asymmetric=0.0), seed=0, length=2
    )
    batch = [ds[0], ds[1]]
    left = torch.stack([b["left"] for b in batch])
    right = torch.stack([b["right"] for b in batch])
    gt = torch.stack([b["disparity"] for b in batch])
    model = build_model("fast", **TINY["fast"]).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = fast_loss(model(left, right), gt, 32.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert min(losses[-5:]) < 0.7 * losses[0], losses


def test_box_mean_is_avg_pool_without_padding():
    import torch.nn.functional as F

    from stereo_depth_ros.models.common import box_mean

    x = torch.rand(2, 1, 37, 53) * 100
    expected = F.avg_pool2d(x, 9, 1, 4, count_include_pad=False)
    assert torch.allclose(box_mean(x, 9), expected, atol=1e-3)
    x.requires_grad_(True)  # training keeps the differentiable path
    assert torch.allclose(box_mean(x, 9), expected, atol=1e-3)
