"""The synthetic stereo generator: exact ground truth, geometry, determinism, occlusion."""

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data import raycast
from stereo_depth_ros.data.synthetic import (
    SceneSequence,
    StereoRig,
    StereoSample,
    fronto_parallel_plane_scene,
    render,
    render_random,
    step_scene,
)

RIG = StereoRig.for_size(224, 160)


def _warp_right(sample: StereoSample, extra_shift: float = 0.0) -> np.ndarray:
    h, w = sample.disparity.shape
    mapx = (np.arange(w, dtype=np.float32)[None, :] - sample.disparity + extra_shift)
    mapy = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, 1)
    return cv2.remap(sample.right.astype(np.float32), mapx.astype(np.float32), mapy,
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def samples() -> list[StereoSample]:
    return [render_random(seed, RIG, max_disparity=48.0, photometric=False) for seed in range(4)]


def test_rig_geometry_and_projections():
    rig = StereoRig(width=640, height=480, fx=400.0, fy=400.0, cx=319.5, cy=239.5, baseline=0.12)
    g = rig.geometry()
    assert g.cx_right == g.cx == 319.5 and g.baseline == 0.12 and g.width == 640
    p_left, p_right = rig.projections()
    assert len(p_left) == 12 and len(p_right) == 12
    assert p_right[3] == pytest.approx(-400.0 * 0.12)
    assert type(g).from_projections(p_left, p_right, 640, 480).baseline == pytest.approx(0.12)


def test_bad_rigs_and_scenes_are_refused_clearly():
    with pytest.raises(ValueError, match="baseline"):
        StereoRig(baseline=0.0)
    with pytest.raises(ValueError, match="size"):
        StereoRig.for_size(0, 10)
    with pytest.raises(ValueError, match="max_disparity"):
        render_random(0, RIG, max_disparity=0)
    with pytest.raises(ValueError, match="depth"):
        fronto_parallel_plane_scene(-1.0)
    from stereo_depth_ros.data.synthetic import Scene

    with pytest.raises(ValueError, match="empty"):
        render(Scene([]), StereoRig.for_size(16, 12))


def test_sample_contract(samples):
    for s in samples:
        h, w = RIG.height, RIG.width
        assert s.left.shape == s.right.shape == (h, w, 3) and s.left.dtype == np.uint8
        assert s.disparity.shape == (h, w) and s.disparity.dtype == np.float32
        assert s.depth.dtype == np.float32 and s.instances.dtype == np.int32
        assert s.occlusion.dtype == bool
        assert np.all(s.disparity > 0) and np.all(s.disparity <= 48.0)
        np.testing.assert_allclose(s.disparity * s.depth, RIG.fx * RIG.baseline, rtol=1e-5)


def test_ground_truth_is_exact_by_warping(samples):
    """The right image warped by the GT disparity reproduces the left where visible."""
    for s in samples:
        visible = ~s.occlusion
        # Bilinear resampling of the right image mixes neighbours at the edge of an occluder
        # in the right view; keep pixels whose 1-pixel neighbourhood is visible too.
        visible = cv2.erode(visible.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert visible.mean() > 0.5
        err = np.abs(_warp_right(s) - s.left).mean(-1)[visible]
        wrong = np.abs(_warp_right(s, 1.5) - s.left).mean(-1)[visible]
        assert np.median(err) < 1.0
        assert err.mean() < 1.5
        assert err.mean() < 0.35 * wrong.mean()


def test_occluded_pixels_do_not_match(samples):
    """Where the GT says occluded the warped right image shows something else."""
    errs = []
    for s in samples:
        occ = s.occlusion & (np.arange(RIG.width)[None, :] - s.disparity >= 0)
        if occ.sum() > 50:
            errs.append(np.abs(_warp_right(s) - s.left).mean(-1)[occ].mean())
    assert errs and np.mean(errs) > 5.0


def test_plane_at_known_depth_has_constant_disparity():
    rig = StereoRig.for_size(160, 120)
    s = render(fronto_parallel_plane_scene(2.5, seed=3), rig)
    expected = rig.fx * rig.baseline / 2.5
    np.testing.assert_allclose(s.disparity, expected, rtol=1e-5)
    np.testing.assert_allclose(s.depth, 2.5, rtol=1e-5)
    # Only the columns whose match falls left of the right image are occluded.
    occluded_cols = np.nonzero(s.occlusion.any(axis=0))[0]
    assert occluded_cols.max() < np.ceil(expected) + 1
    assert not s.occlusion[:, int(np.ceil(expected)) + 1:].any()
    assert s.left.std() > 5  # textured


def test_step_scene_has_both_depths_and_occludes_at_the_step():
    rig = StereoRig.for_size(160, 120)
    s = render(step_scene(1.0, 4.0, seed=1), rig)
    near = rig.fx * rig.baseline / 1.0
    far = rig.fx * rig.baseline / 4.0
    values = np.unique(np.round(s.disparity, 3))
    assert len(values) == 2
    np.testing.assert_allclose(values, [far, near], rtol=1e-4)
    assert np.all(s.disparity[:, int(rig.cx) + 2:] == pytest.approx(near, rel=1e-4))
    assert np.all(s.disparity[:, : int(rig.cx) - 1] == pytest.approx(far, rel=1e-4))
    assert set(np.unique(s.instances)) == {0, 2}
    # The far wall just left of the step is hidden from the right camera by the near plane.
    step = int(round(rig.cx))
    band = s.occlusion[:, step - int(near - far) + 2: step - 1]
    assert band.mean() > 0.95
    beyond = s.occlusion[:, int(np.ceil(far)) + 1: step - int(near - far) - 2]
    assert not beyond.any()
    assert not s.occlusion[:, step + 2:].any()


def test_same_seed_same_sample_other_seed_differs():
    a = render_random(11, RIG, 48.0, photometric=True)
    b = render_random(11, RIG, 48.0, photometric=True)
    c = render_random(12, RIG, 48.0, photometric=True)
    for name in ("left", "right", "disparity", "occlusion", "instances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.disparity, c.disparity)


def test_photometric_changes_images_not_geometry():
    clean = render_random(5, RIG, 48.0, photometric=False)
    noisy = render_random(5, RIG, 48.0, photometric=True)
    np.testing.assert_array_equal(clean.disparity, noisy.disparity)
    assert np.abs(clean.left.astype(int) - noisy.left).mean() > 1.0


def test_instances_cover_objects_and_match_depth(samples):
    seen = set()
    for s in samples:
        ids = np.unique(s.instances)
        assert ids.min() >= 0
        seen.update(ids.tolist())
        objects = ids[ids >= 2]
        assert len(objects) >= 1
        for k in objects:
            # An object's pixels are nearer than the wall behind it.
            assert np.median(s.depth[s.instances == k]) < s.depth[s.instances == 0].max() + 1e-3
    assert 0 in seen and any(k >= 2 for k in seen)


def test_random_scenes_have_thin_structures_and_varied_counts():
    widths, counts = [], []
    for seed in range(12):
        rng = np.random.default_rng([seed, 0])
        from stereo_depth_ros.data.synthetic import random_scene
        scene = random_scene(rng, RIG, 48.0)
        counts.append(sum(o.instance >= 2 for o in scene.objects))
        for o in scene.objects:
            if o.shape.kind in ("cylinder", "box"):
                thin = np.sort(o.shape.half)[0] * RIG.fx / o.shape.center[2]
                widths.append(thin)
    assert min(widths) < 3.0  # some objects are a few pixels thick
    assert len(set(counts)) > 3


def test_sequence_is_smooth_and_deterministic():
    seq = SceneSequence(7, RIG, max_disparity=48.0)
    f0, f1, f1b = seq.frame(0), seq.frame(1), SceneSequence(7, RIG, 48.0).frame(1)
    np.testing.assert_array_equal(f1.disparity, f1b.disparity)
    np.testing.assert_array_equal(f1.left, f1b.left)
    assert np.all(f1.disparity > 0) and np.all(f1.disparity <= 48.0)
    # Smooth: consecutive frames mostly agree, frames far apart do not.
    near_change = np.mean(np.abs(f1.disparity - f0.disparity) > 1.0)
    far = seq.frame(60)
    far_change = np.mean(np.abs(far.disparity - f0.disparity) > 1.0)
    assert near_change < 0.1
    assert far_change > near_change
    for i in (0, 100, 250):
        d = seq.frame(i).disparity
        assert np.all(d > 0) and np.all(d <= 48.0)


def test_raycast_primitives_hit_where_expected():
    eye = np.eye(3)
    origin = np.zeros(3)
    dx = np.array([0.0, 0.5, 0.0], np.float32)
    dy = np.zeros(3, np.float32)
    sphere = raycast.Shape("sphere", [0, 0, 5], eye, [1, 1, 1])
    t = raycast.intersect(sphere, origin, dx, dy)
    assert t[0] == pytest.approx(4.0) and not np.isfinite(t[1])
    box = raycast.Shape("box", [0, 0, 5], eye, [1, 1, 1])
    assert raycast.intersect(box, origin, dx, dy)[0] == pytest.approx(4.0)
    cyl = raycast.Shape("cylinder", [0, 0, 5], eye, [1, 2, 1])
    assert raycast.intersect(cyl, origin, dx, dy)[0] == pytest.approx(4.0)
    quad = raycast.Shape("quad", [0, 0, 3], eye, [0.5, 0.5, 0])
    t = raycast.intersect(quad, origin, dx, dy)
    assert t[0] == pytest.approx(3.0) and not np.isfinite(t[1])
    uv, n = raycast.surface(sphere, np.array([[0, 0, 4.0]], np.float32))
    np.testing.assert_allclose(n[0], [0, 0, -1], atol=1e-6)


def test_every_texture_kind_is_valid_and_varied():
    from stereo_depth_ros.data import textures

    rng = np.random.default_rng(0)
    for kind in textures.KINDS:
        img = textures.random_texture(rng, 64, kind)
        assert img.shape == (64, 64, 3) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1
    a = textures.bank_texture(3, 256)
    b = textures.bank_texture(3 + textures.BANK_SIZES[256], 256)
    assert a[0] is b[0] and a[0].dtype == np.uint8 and a[0].shape == (256, 256, 3)
    assert a[-1].shape[0] >= 4 and len(a) > 3
    with pytest.raises(ValueError, match="unknown texture kind"):
        textures.random_texture(rng, 64, "plaid")


def test_shadows_darken_the_wall_consistently_in_both_views():
    from stereo_depth_ros.data.raycast import Shape
    from stereo_depth_ros.data.synthetic import Scene, SceneObject

    rig = StereoRig.for_size(160, 120)
    base = fronto_parallel_plane_scene(5.0, seed=2)
    box = Shape("box", [0.0, 0.0, 3.0], np.eye(3), [0.4, 0.4, 0.4])
    objects = [*base.objects, SceneObject(box, base.objects[0].material, 2)]
    lit = {}
    for shadows in (False, True):
        scene = Scene(objects, light=np.array([0.5, -0.4, -1.0]), ambient=0.3, shadows=shadows)
        lit[shadows] = render(scene, rig)
    wall = lit[True].instances == 0
    darker = (lit[True].left.astype(int).sum(-1) < 0.8 * lit[False].left.astype(int).sum(-1))
    assert (darker & wall).sum() > 100  # a cast shadow on the wall, not on the box
    # The shadow lands on the same surface points in both views: warping by the GT matches
    # as well with shadows as without (resampling error only), far better than a wrong shift.
    errs = {}
    for shadows, s in lit.items():
        visible = cv2.erode((~s.occlusion).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        errs[shadows] = np.abs(_warp_right(s) - s.left).mean(-1)[visible].mean()
        wrong = np.abs(_warp_right(s, 1.5) - s.left).mean(-1)[visible].mean()
        assert errs[shadows] < 0.35 * wrong
    assert errs[True] < 1.3 * errs[False] + 0.2


def test_photo_folder_feeds_the_texture_bank_and_can_be_switched_off(tmp_path):
    from stereo_depth_ros.data import textures

    procedural = textures.bank_texture(5, 256)[0].copy()
    photo = np.zeros((100, 120, 3), np.uint8)
    photo[:, :, 2] = 200  # pure red in BGR on disk
    cv2.imwrite(str(tmp_path / "red.png"), photo)
    try:
        assert textures.use_photos(tmp_path, fraction=1.0) == 1
        crop = textures.bank_texture(5, 256)[0]
        assert crop.shape == (256, 256, 3)
        assert np.abs(crop[..., 0].astype(int) - 200).max() <= 1 and crop[..., 1:].max() <= 1
        s = render_random(3, StereoRig.for_size(64, 48), 16.0, photometric=False)
        assert s.left.std() > 0
    finally:
        textures.use_photos(None)
    np.testing.assert_array_equal(textures.bank_texture(5, 256)[0], procedural)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        textures.use_photos(tmp_path / "nowhere")
