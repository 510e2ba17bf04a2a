"""The shipped default stereo model beats OpenCV SGBM (stereo_image_proc's settings) on a real pair.

scikit-image's wheel ships Middlebury's Motorcycle pair (MiddEval3, quarter size) with its
ground truth: real photographs that no shipped model was trained on (the same scene is in the
validation split of ../shared/data/real, never in training), so this test runs anywhere.
"""

import numpy as np
import pytest

from stereo_depth_ros.backends import default_backend_name, make_backend
from stereo_depth_ros.evaluation.metrics import three_views

NDISP = 80  # Middlebury's disparity bound for this scene (its calib.txt)


@pytest.fixture(scope="module")
def motorcycle():
    data = pytest.importorskip("skimage.data")
    left, right, disp = data.stereo_motorcycle()
    return left, right, np.where(np.isfinite(disp), disp, np.nan).astype(np.float32)


def test_the_default_backend_is_the_learned_model():
    assert default_backend_name() == "learned"


def test_default_model_beats_sgbm_on_a_real_pair(motorcycle):
    left, right, gt = motorcycle
    sgbm = make_backend("sgbm", disparity_range=NDISP).compute(left, right).shift.numpy()
    default = make_backend("default", max_disparity=NDISP, device="cpu").compute(left, right).shift.numpy()
    base = three_views(sgbm, gt, reference=sgbm)
    ours = three_views(default, gt, reference=sgbm)
    assert ours["density"] == 1.0
    for key in ("dense_epe", "dense_bad2", "dense_bad3"):
        assert ours[key] < base[key], (key, ours[key], base[key])
    assert ours["ref_bad3"] <= base["ref_bad3"]
