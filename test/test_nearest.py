import math

import cv2
import numpy as np
import pytest
import torch

from stereo_depth_ros.estimator import CheckpointError
from stereo_depth_ros.geometry import StereoGeometry
from stereo_depth_ros.models.unet import UNet, UNetConfig
from stereo_depth_ros.nearest import (
    NearestInputError,
    NearestObjectDetector,
    describe_mask,
    edge_disparity,
    largest_component,
    load_unet_checkpoint,
    mask_edges,
    nearest_object_label,
    resize_disparity,
    robust_depth,
    save_unet_checkpoint,
    threshold_mask,
    unet_input,
)

W, H = 160, 120
GEOM = StereoGeometry(fx=100.0, fy=100.0, cx=79.5, cy=59.5, cx_right=79.5, baseline=0.12, width=W, height=H)


def scene(near_depth=2.0, far_depth=10.0):
    """Wall at far_depth, a 30x20 box at near_depth, a disk at 4 m; returns disparity, box mask."""
    depth = np.full((H, W), far_depth, np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    disk = (yy - 40) ** 2 + (xx - 120) ** 2 < 15**2
    depth[disk] = 4.0
    box = np.zeros((H, W), bool)
    box[50:70, 40:70] = True
    depth[box] = near_depth
    disparity = (GEOM.focal_baseline / depth).astype(np.float32)
    left = (np.random.default_rng(0).integers(0, 255, (H, W, 3))).astype(np.uint8)
    return left, disparity, box


def boundary(mask):
    """Mask pixels with a 4-neighbour outside the mask (or on the image border)."""
    p = np.pad(mask, 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def test_label_is_the_nearest_object_with_enough_area_not_ground():
    inst = np.zeros((H, W), np.int32)
    depth = np.full((H, W), 20.0, np.float32)
    inst[100:, :] = 1
    depth[100:, :] = 0.5  # ground: nearest of all, but never the object
    inst[10:30, 10:30] = 2
    depth[10:30, 10:30] = 3.0
    inst[40:44, 40:44] = 3
    depth[40:44, 40:44] = 1.0  # 16 px: below min_area
    inst[50:70, 50:70] = 4
    depth[50:70, 50:70] = 2.0
    inst[50:90, 100:140] = 5
    depth[50:90, 100:140] = 6.0
    depth[50:51, 100:120] = 1.5  # 20 of 1600 px (1.25 %) nearer: below the 5th percentile
    mask, inst_id = nearest_object_label(inst, depth, min_area=50)
    assert inst_id == 4
    assert np.array_equal(mask, inst == 4)
    assert robust_depth(depth, inst == 5) == pytest.approx(6.0)
    mask, inst_id = nearest_object_label(inst, depth, min_area=50, max_range=1.9)
    assert inst_id == 0 and not mask.any()


def test_label_without_objects_is_empty():
    inst = np.ones((H, W), np.int32)
    mask, inst_id = nearest_object_label(inst, np.ones((H, W), np.float32))
    assert inst_id == 0 and not mask.any()
    with pytest.raises(NearestInputError, match="differ"):
        nearest_object_label(inst, np.ones((H, W + 1), np.float32))


def test_edges_are_the_one_pixel_boundary():
    mask = np.zeros((H, W), bool)
    mask[20:60, 30:90] = True
    mask[35:45, 50:60] = False  # a hole: its rim is an edge too
    edges = mask_edges(mask)
    b = boundary(mask)
    assert not (edges & ~mask).any()
    assert not (edges & ~b).any()
    # every boundary pixel is covered (one-pixel contour of a rectangle is the whole rim)
    assert (edges == b).all()
    assert edges.sum() == (2 * (40 + 60) - 4) + 4 * 10  # outer rim + the rim 4-adjacent to the hole
    assert not mask_edges(np.zeros((H, W), bool)).any()


def test_edge_points_lie_on_the_object_at_its_true_depth():
    left, disparity, box = scene(near_depth=2.0)
    disparity[50:70, 40] = np.nan  # holes on the object's boundary do not lose the edge
    obj = describe_mask(box, disparity, GEOM, min_area=50)
    assert obj.found
    assert obj.distance == pytest.approx(2.0, rel=1e-4)
    assert np.array_equal(obj.edges, boundary(box))
    assert obj.edge_points.shape == (obj.edges.sum(), 3)
    assert np.allclose(obj.edge_points[:, 2], 2.0, rtol=1e-4)
    x_expected = (np.array([40, 69]) - GEOM.cx) * 2.0 / GEOM.fx
    y_expected = (np.array([50, 69]) - GEOM.cy) * 2.0 / GEOM.fy
    assert obj.edge_points[:, 0].min() == pytest.approx(x_expected[0], abs=1e-4)
    assert obj.edge_points[:, 0].max() == pytest.approx(x_expected[1], abs=1e-4)
    assert obj.edge_points[:, 1].min() == pytest.approx(y_expected[0], abs=1e-4)
    assert obj.edge_points[:, 1].max() == pytest.approx(y_expected[1], abs=1e-4)
    assert obj.box_center[2] == pytest.approx(2.0, rel=1e-3)
    assert obj.box_size[0] == pytest.approx(29 * 2.0 / GEOM.fx, rel=0.1)


def test_edge_disparity_stays_on_the_object():
    _, disparity, box = scene()
    edges = mask_edges(box)
    # background disparity leaking onto the object's rim is ignored when the window has object pixels
    d = disparity.copy()
    d[50, 40:70] = np.nan
    values = edge_disparity(d, box, edges)
    assert np.allclose(values, GEOM.focal_baseline / 2.0)


def test_threshold_baseline_finds_the_near_box():
    _, disparity, box = scene()
    mask = threshold_mask(disparity, band=0.15, min_area=50)
    assert np.array_equal(mask, box)
    # an isolated outlier does not set the maximum
    d = disparity.copy()
    d[5, 5] = 500.0
    assert np.array_equal(threshold_mask(d, band=0.15, min_area=50), box)


def test_largest_component_and_min_area():
    m = np.zeros((H, W), bool)
    m[0:5, 0:5] = True
    m[10:30, 10:30] = True
    assert largest_component(m).sum() == 400
    assert not largest_component(m, min_area=401).any()


def test_nothing_in_range_is_empty_with_infinite_distance():
    left, disparity, box = scene(near_depth=8.0, far_depth=12.0)
    det = NearestObjectDetector(backend="threshold", max_range=5.0, min_area=50)
    obj = det.detect(left, disparity, GEOM)
    # the 4 m disk is the only thing in range
    assert obj.found and obj.distance == pytest.approx(4.0, rel=1e-3)
    det = NearestObjectDetector(backend="threshold", max_range=3.0, min_area=50)
    obj = det.detect(left, disparity, GEOM)
    assert not obj.found
    assert obj.distance == math.inf
    assert not obj.mask.any() and not obj.edges.any() and obj.edge_points.shape == (0, 3)
    assert obj.box_center is None


def test_threshold_detector_reports_distance_and_edges():
    left, disparity, box = scene(near_depth=2.5)
    obj = NearestObjectDetector(backend="threshold", max_range=20.0).detect(left, disparity, GEOM)
    assert np.array_equal(obj.mask, box)
    assert obj.distance == pytest.approx(2.5, rel=1e-4)
    assert np.allclose(obj.edge_points[:, 2], 2.5, rtol=1e-4)


def test_bad_inputs_are_clear_errors():
    left, disparity, _ = scene()
    det = NearestObjectDetector(backend="threshold")
    with pytest.raises(NearestInputError, match="no valid pixel"):
        det.detect(left, np.full((H, W), np.nan, np.float32), GEOM)
    with pytest.raises(NearestInputError, match="160x120.*161x120|161x120.*160x120"):
        det.detect(left, np.ones((H, W + 1), np.float32), GEOM)
    with pytest.raises(NearestInputError, match="camera"):
        small = StereoGeometry(100.0, 100.0, 40.0, 30.0, 40.0, 0.12, 80, 60)
        det.detect(left, disparity, small)
    with pytest.raises(NearestInputError, match="floating"):
        det.detect(left, disparity.astype(np.int32), GEOM)
    with pytest.raises(ValueError, match="backend"):
        NearestObjectDetector(backend="magic")


def test_partial_nan_disparity_is_tolerated():
    left, disparity, box = scene()
    d = disparity.copy()
    d[55:60, 45:60] = np.nan  # a hole inside the object
    d[:, :10] = np.nan
    obj = NearestObjectDetector(backend="threshold").detect(left, d, GEOM)
    assert obj.found and obj.distance == pytest.approx(2.0, rel=1e-4)
    assert np.isfinite(obj.edge_points).all()


def test_unet_input_channels_and_nan_aware_resize():
    left, disparity, box = scene()
    d = disparity.copy()
    d[0:10, :] = np.nan
    cfg = UNetConfig(image_mode="gray", use_valid=True, use_relative=True, use_confidence=True)
    x = unet_input(left, d, max_disparity=12.0, config=cfg)
    assert x.shape == (5, H, W)
    assert x[1][box].min() == pytest.approx(6.0 / 12.0)
    assert (x[1][:10] == 0).all() and (x[2][:10] == 0).all() and (x[2][10:] == 1).all()
    # relative to the frame's peak (the 2 m box): 1 on the box, 0.2 on the 10 m wall
    assert np.allclose(x[3][box], 1.0) and x[3][100, 5] == pytest.approx(0.2)
    assert 0.0 <= x[0].min() and x[0].max() <= 1.0
    # the relative channel does not depend on the normalization
    assert np.allclose(unet_input(left, d, 24.0, cfg)[3], x[3])
    small = unet_input(left, d, 12.0, cfg, size=(80, 60))
    assert small.shape == (5, 60, 80)
    assert small[1][30, 30] == pytest.approx(0.5, abs=1e-5)  # normalized value unchanged by resizing
    r = resize_disparity(d, (80, 60))
    assert np.isnan(r[:4]).all() and np.isfinite(r[6:]).all()


def test_unet_detector_end_to_end_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=4, levels=3))
    path = save_unet_checkpoint(tmp_path / "n.pt", net, {"input_size": [80, 60], "note": "test"})
    loaded, ckpt = load_unet_checkpoint(path)
    assert ckpt["meta"]["note"] == "test" and ckpt["arch"] == "unet"
    assert loaded.config == net.config
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    det = NearestObjectDetector(backend="unet", model=path, score_threshold=0.5, device="cpu")
    assert det.input_size == (80, 60)
    left, disparity, _ = scene()
    prob = det.probability(left, disparity, 12.0)
    assert prob.shape == (H, W) and (prob >= 0).all() and (prob <= 1).all()
    obj = det.detect(left, disparity, GEOM, max_disparity=12.0)
    assert obj.mask.shape == (H, W)
    with pytest.raises(CheckpointError, match="train-nearest"):
        NearestObjectDetector(backend="unet", model=tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_unet_checkpoint(tmp_path / "bad.pt")


def test_unet_input_baseline_hint_channel_is_the_threshold_mask():
    left, disparity, box = scene()
    cfg = UNetConfig(use_baseline=True, baseline_band=0.15)
    x = unet_input(left, disparity, 12.0, cfg)
    assert x.shape == (cfg.in_channels, H, W) == (5, H, W)
    assert np.array_equal(x[-1] > 0.5, box)
    assert not unet_input(left, np.full((H, W), np.nan, np.float32), 12.0, cfg)[-1].any()


def test_a_mask_that_bleeds_onto_the_background_keeps_points_on_the_object():
    _, disparity, box = scene(near_depth=2.0, far_depth=10.0)
    grown = cv2.dilate(box.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    obj = describe_mask(grown, disparity, GEOM, min_area=50)
    assert obj.distance == pytest.approx(2.0, rel=1e-4)
    assert np.allclose(obj.edge_points[:, 2], 2.0, rtol=1e-4)  # edges 2 px off still take the object's depth
    assert obj.box_center[2] == pytest.approx(2.0, rel=1e-3) and obj.box_size[2] < 0.05


def test_matcher_outliers_at_the_end_of_the_search_range_are_not_the_nearest_object():
    """SGBM leaves blobs of wrong matches (bigger than its speckle filter) at the top of its
    search range on weak texture; with the backend's limit they are not taken as an object."""
    left, disparity, box = scene(near_depth=2.0)  # box at 6 px
    limit = 32.0  # the backend's max_disparity
    d = disparity.copy()
    d[10:22, 100:112] = 31.0  # a 144 px blob on the 10 m wall, 1 px below the limit
    d[90:100, 120:130] = 29.5  # another one, within the top 10 % of the range
    det = NearestObjectDetector(backend="threshold", min_area=50)
    fooled = det.detect(left, d, GEOM)
    assert fooled.distance < 0.5  # without the limit the blob is taken for the object
    obj = det.detect(left, d, GEOM, disparity_limit=limit)
    assert np.array_equal(obj.mask, box)
    assert obj.distance == pytest.approx(2.0, rel=1e-4)
    assert np.allclose(obj.edge_points[:, 2], 2.0, rtol=1e-4)
    with pytest.raises(NearestInputError, match="search range"):
        det.detect(left, np.full((H, W), 31.5, np.float32), GEOM, disparity_limit=limit)
