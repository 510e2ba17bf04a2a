import math

import numpy as np
import pytest

from stereo_depth_ros.evaluation.metrics import aggregate, depth_metrics, segmentation_metrics, stereo_metrics


def test_stereo_metrics_hand_computed():
    gt = np.array([[10.0, 100.0, np.inf, 0.0], [20.0, 50.0, 30.0, np.nan]])
    pred = np.array([[10.5, 104.0, 5.0, 5.0], [22.5, np.nan, 30.0, 1.0]])
    m = stereo_metrics(pred, gt)
    # valid GT: 10, 100, 20, 50, 30 -> errors 0.5, 4, 2.5, miss, 0
    assert m["valid_pixels"] == 5
    assert m["epe"] == pytest.approx((0.5 + 4 + 2.5 + 0) / 4)
    assert m["bad1"] == pytest.approx(3 / 5)  # 4, 2.5, miss
    assert m["bad2"] == pytest.approx(3 / 5)
    assert m["bad3"] == pytest.approx(2 / 5)  # 4, miss
    # D1: 4 px > 3 but 4 % of 100 < 5 % -> not D1; the miss is
    assert m["d1_all"] == pytest.approx(1 / 5)
    assert m["density"] == pytest.approx(4 / 5)


def test_mask_and_empty():
    gt = np.array([[1.0, 2.0]])
    pred = np.array([[1.0, 9.0]])
    assert stereo_metrics(pred, gt, mask=np.array([[True, False]]))["bad3"] == 0.0
    assert math.isnan(stereo_metrics(pred, np.zeros((1, 2)))["epe"])
    with pytest.raises(ValueError, match="size"):
        stereo_metrics(pred, np.zeros((2, 2)))


def test_depth_and_segmentation_metrics():
    d = depth_metrics(np.array([2.0, 4.0]), np.array([2.0, 2.0]))
    assert d["abs_rel"] == pytest.approx(0.5)
    assert d["rmse"] == pytest.approx(math.sqrt(2))
    assert d["delta1"] == pytest.approx(0.5)
    s = segmentation_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert s["iou"] == pytest.approx(1 / 3) and s["dice"] == pytest.approx(0.5)
    assert segmentation_metrics(np.zeros(3), np.zeros(3)) == {"iou": 1.0, "dice": 1.0}


def test_aggregate_is_pixel_weighted():
    agg = aggregate([{"epe": 1.0, "valid_pixels": 1}, {"epe": 4.0, "valid_pixels": 3}])
    assert agg["epe"] == pytest.approx(3.25)
    assert agg["valid_pixels"] == 4 and agg["frames"] == 2
