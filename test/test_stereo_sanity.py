"""The seeds' stereo sanity check on the shipped weights: (left, left) must lose the disparity structure.

A network that really matches the two views predicts the scene's disparity from (left, right);
fed (left, left) every pixel matches itself at zero shift, so a true stereo model cannot
reproduce the ground truth. A model that merely guesses depth from one image would.
"""

import numpy as np
import pytest
import torch

from stereo_depth_ros.paths import WEIGHTS_DIR

CANDIDATES = [WEIGHTS_DIR / "default_stereo.pt", WEIGHTS_DIR / "fast_cpu_candidate.pt"]
SHIPPED = next((p for p in CANDIDATES if p.is_file()), None)


@pytest.mark.skipif(SHIPPED is None, reason="no shipped stereo weights in stereo_depth_ros/weights/")
def test_left_left_loses_the_disparity_structure():
    from stereo_depth_ros.data.synthetic import StereoRig, render_random
    from stereo_depth_ros.estimator import StereoEstimator

    torch.set_num_threads(2)
    est = StereoEstimator.from_checkpoint(SHIPPED, device="cpu", precision="fp32")
    errors_lr, errors_ll, corr_lr, corr_ll = [], [], [], []
    for seed in (2_500_000, 2_500_001):  # held out: never trained or validated on
        s = render_random(seed, StereoRig.for_size(320, 240), max_disparity=64.0)
        valid = np.isfinite(s.disparity) & ~s.occlusion
        gt = s.disparity[valid]
        pred_lr = est.predict_numpy(s.left, s.right)[0][valid]
        pred_ll = est.predict_numpy(s.left, s.left)[0][valid]
        errors_lr.append(np.abs(pred_lr - gt).mean())
        errors_ll.append(np.abs(pred_ll - gt).mean())
        corr_lr.append(np.corrcoef(pred_lr, gt)[0, 1])
        corr_ll.append(np.corrcoef(pred_ll, gt)[0, 1] if pred_ll.std() > 1e-6 else 0.0)
    epe_lr, epe_ll = float(np.mean(errors_lr)), float(np.mean(errors_ll))
    assert epe_ll > 3 * epe_lr, (epe_lr, epe_ll)
    assert np.mean(corr_lr) > 0.8, corr_lr
    assert np.mean(corr_ll) < np.mean(corr_lr) - 0.3, (corr_lr, corr_ll)
