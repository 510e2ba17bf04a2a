import numpy as np
import pytest
import torch

from stereo_depth_ros.geometry import StereoGeometry, disparity_to_depth, reproject
from stereo_depth_ros.pointcloud import (
    CloudBuilder,
    build_cloud,
    build_cloud_reference,
    cloud_from_disparity,
    depth_from_disparity,
    pack_rgb,
    read_ply,
    unpack_rgb,
    write_ply,
    write_ply_payload,
)

GEOM = StereoGeometry(fx=100.0, fy=100.0, cx=15.5, cy=11.5, cx_right=15.5, baseline=0.1,
                      width=32, height=24)


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    disp = rng.uniform(2, 20, size=(24, 32)).astype(np.float32)
    disp[3, 4] = np.nan
    disp[10, 11] = 0.0
    rgb = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    return disp, rgb


@pytest.mark.parametrize("organized", [True, False])
@pytest.mark.parametrize("use_rgb", [True, False])
def test_vectorized_matches_reference(organized, use_rgb):
    disp, rgb = _scene()
    pts = reproject(disp, GEOM)
    colours = rgb if use_rgb else None
    payload = build_cloud(pts, colours, organized)
    assert payload.tobytes() == build_cloud_reference(pts, colours, organized)
    torch_payload = build_cloud(torch.from_numpy(pts), torch.from_numpy(rgb) if use_rgb else None, organized)
    assert torch_payload.tobytes() == payload.tobytes()


def _awkward_disparity(seed=0):
    disp, rgb = _scene(seed)
    disp[0, :4] = [-1.0, np.inf, -np.inf, 1e-30]  # negative, infinite, tiny (huge depth)
    return disp, rgb


def test_depth_from_disparity_is_disparity_to_depth_bit_for_bit():
    disp, _ = _awkward_disparity()
    out = np.full_like(disp, 7.0)
    assert depth_from_disparity(disp, GEOM, out) is out
    assert out.tobytes() == disparity_to_depth(disp, GEOM).tobytes()


@pytest.mark.parametrize("organized", [True, False])
@pytest.mark.parametrize("use_rgb", [True, False])
@pytest.mark.parametrize("pass_depth", [True, False])
def test_cloud_builder_gives_the_reference_bytes(organized, use_rgb, pass_depth):
    builder = CloudBuilder()
    for seed in (1, 2):  # the second build reuses the buffer and must not keep the first frame
        disp, rgb = _awkward_disparity(seed)
        colours = rgb if use_rgb else None
        depth = depth_from_disparity(disp, GEOM) if pass_depth else None
        payload = builder.build(disp, GEOM, colours, depth, organized)
        expected = build_cloud_reference(reproject(disp, GEOM), colours, organized)
        assert payload.tobytes() == expected
        if payload.buffer is not None:  # what a message takes without a copy
            assert bytes(payload.buffer) == expected
        ref = build_cloud(reproject(disp, GEOM), colours, organized)
        assert (payload.height, payload.width, payload.is_dense, payload.fields) == \
            (ref.height, ref.width, ref.is_dense, ref.fields)


def test_cloud_builder_follows_size_and_geometry_changes_and_dense_frames():
    builder = CloudBuilder()
    disp, rgb = _scene()
    builder.build(disp, GEOM, rgb)
    shifted = StereoGeometry(fx=120.0, fy=90.0, cx=10.0, cy=8.0, cx_right=12.0, baseline=0.2,
                             width=32, height=24)
    full = np.full((24, 32), 5.0, np.float32)
    payload = builder.build(full, shifted, rgb)
    assert payload.tobytes() == build_cloud_reference(reproject(full, shifted), rgb) and payload.is_dense
    small = np.full((6, 8), 4.0, np.float32)
    payload = builder.build(small, GEOM, None)
    assert payload.tobytes() == build_cloud_reference(reproject(small, GEOM), None)
    with pytest.raises(ValueError, match="colours"):
        builder.build(disp, GEOM, rgb[:5])
    with pytest.raises(ValueError, match="disparity must be"):
        builder.build(disp[None], GEOM, None)


def test_organized_layout_and_nans():
    disp, rgb = _scene()
    p = cloud_from_disparity(disp, GEOM, rgb, organized=True)
    assert (p.height, p.width, p.point_step, p.row_step) == (24, 32, 16, 512)
    assert [f for f, _ in p.fields] == ["x", "y", "z", "rgb"] and not p.is_dense
    z = p.points["z"]
    assert np.isnan(z[3, 4]) and np.isnan(z[10, 11]) and np.isfinite(z).sum() == 24 * 32 - 2
    np.testing.assert_allclose(z[5, 6], 100 * 0.1 / disp[5, 6], rtol=1e-6)
    np.testing.assert_allclose(p.points["x"][5, 6], (6 - 15.5) * z[5, 6] / 100, rtol=1e-5)
    np.testing.assert_array_equal(unpack_rgb(p.points["rgb"]), rgb)
    dense = cloud_from_disparity(disp, GEOM, rgb, organized=False)
    assert (dense.height, dense.width) == (1, 24 * 32 - 2) and dense.is_dense


def test_rgb_packing_is_pcl_convention():
    packed = pack_rgb(np.array([[1, 2, 3]], dtype=np.uint8))
    assert packed.view(np.uint32)[0] == 0x010203


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, binary):
    disp, rgb = _scene(1)
    payload = cloud_from_disparity(disp, GEOM, rgb)
    n = write_ply_payload(tmp_path / "c.ply", payload, binary=binary)
    assert n == 24 * 32 - 2
    xyz, colours = read_ply(tmp_path / "c.ply")
    keep = np.isfinite(payload.xyz()).all(axis=1)
    np.testing.assert_allclose(xyz, payload.xyz()[keep], rtol=1e-5)
    np.testing.assert_array_equal(colours, payload.rgb()[keep])
    header = (tmp_path / "c.ply").read_bytes()[:200].decode("ascii", "replace")
    assert header.startswith("ply\nformat ") and f"element vertex {n}" in header


def test_ply_without_colour(tmp_path):
    write_ply(tmp_path / "p.ply", np.array([[0, 0, 1], [np.nan, 0, 0], [1, 2, 3]], np.float32))
    xyz, rgb = read_ply(tmp_path / "p.ply")
    assert rgb is None and xyz.shape == (2, 3)


def test_shape_errors():
    with pytest.raises(ValueError, match="points must be"):
        build_cloud(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="colours"):
        build_cloud(np.zeros((4, 4, 3)), np.zeros((4, 5, 3), np.uint8))
