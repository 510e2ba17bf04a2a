"""Self-supervised losses behave (the true disparity scores best) and fine-tuning runs end to end."""

import cv2
import numpy as np
import pytest
import torch

from stereo_depth_ros.estimator import StereoEstimator, load_checkpoint, make_checkpoint, save_checkpoint
from stereo_depth_ros.training import losses
from stereo_depth_ros.training.finetune import FinetuneConfig, FinetuneError, finetune, folder_pairs

CFG = {"max_disparity": 32, "feat_half": 8, "feat_quarter": 16, "agg_channels": 16, "refine_channels": 8}


@pytest.fixture(scope="module")
def scene():
    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    s = render_random(3, StereoRig.for_size(96, 72), max_disparity=24.0, photometric=False)

    def t(a):
        return torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255

    return t(s.left), t(s.right), torch.from_numpy(s.disparity)[None], s


def test_true_disparity_has_lower_photometric_loss_than_wrong_ones(scene):
    left, right, gt, _ = scene
    true_loss = losses.photometric_loss(left, right, gt)
    for wrong in (gt + 3.0, gt * 0.5, torch.zeros_like(gt)):
        assert true_loss < 0.8 * losses.photometric_loss(left, right, wrong)


def test_warp_reconstructs_the_left_view_where_visible(scene):
    left, right, gt, s = scene
    recon = losses.warp_right_to_left(right, gt)
    mask = torch.from_numpy(~s.occlusion)[None] & losses.warp_valid(gt)
    err = (recon - left).abs().mean(1)[mask]
    assert err.mean() < 0.05


def test_smoothness_prefers_smooth_maps_and_lr_consistency_is_zero_for_consistent_pairs(scene):
    left, _, gt, _ = scene
    noisy = gt + torch.randn_like(gt) * 2
    assert losses.smoothness_loss(gt, left) < losses.smoothness_loss(noisy, left)
    const = torch.full((1, 20, 30), 4.0)
    assert losses.left_right_consistency(const, const) < 1e-5
    assert losses.left_right_consistency(const, const + 2) > 1.5


def test_ssim_is_zero_for_identical_images(scene):
    left = scene[0]
    assert losses.ssim(left, left).max() < 1e-4
    assert losses.ssim(left, 1 - left).mean() > 0.1


def test_finetune_on_a_folder_writes_a_loadable_checkpoint(tmp_path, scene):
    _, _, _, s = scene
    (tmp_path / "data" / "left").mkdir(parents=True)
    (tmp_path / "data" / "right").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "data" / "left" / f"{i}.png"), cv2.cvtColor(s.left, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "data" / "right" / f"{i}.png"), cv2.cvtColor(s.right, cv2.COLOR_RGB2BGR))
    pairs = folder_pairs(tmp_path / "data")
    assert len(pairs) == 2
    from stereo_depth_ros.models import build_model

    base = save_checkpoint(
        make_checkpoint(build_model("fast", **CFG), "fast", CFG, {"steps": 0}), tmp_path / "base.pt"
    )
    cfg = FinetuneConfig(steps=3, batch_size=2, crop=(64, 48), num_threads=1)
    result = finetune(
        base, pairs, tmp_path / "ft.pt", cfg, device="cpu", data_description="test", progress=False
    )
    assert np.isfinite(result["loss_last"])
    meta = load_checkpoint(tmp_path / "ft.pt")["meta"]
    assert meta["finetune_steps"] == 3 and meta["finetuned_from"].endswith("base.pt")
    assert StereoEstimator.from_checkpoint(tmp_path / "ft.pt", device="cpu").arch == "fast"


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FinetuneError, match="no stereo pairs"):
        folder_pairs(tmp_path)


def test_a_guided_network_is_refused_with_the_reason(tmp_path):
    from stereo_depth_ros.models import build_model

    cfg = {"max_disparity": 32, "channels": [8, 8, 8], "bottleneck_blocks": 1}
    base = save_checkpoint(make_checkpoint(build_model("guided", **cfg), "guided", cfg, {"steps": 0}),
                           tmp_path / "guided.pt")
    with pytest.raises(ValueError, match="cannot be fine-tuned without ground truth"):
        finetune(base, [], tmp_path / "ft.pt", FinetuneConfig(steps=1), device="cpu", progress=False)
