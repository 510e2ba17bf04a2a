"""Dataset readers on tiny datasets written by the tests, in each dataset's own layout."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.formats import DataFormatError, write_kitti_disparity, write_pfm
from stereo_depth_ros.data.readers import ItemError, StereoRecord, open_dataset

SHARED_MIDDLEBURY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "middlebury"
H, W = 24, 32


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    disp = rng.uniform(1, 20, (H, W)).astype(np.float32)
    return left, right, disp


def _png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb)


def _check(rec: StereoRecord, left, right, disp=None):
    np.testing.assert_array_equal(rec.left, left)
    np.testing.assert_array_equal(rec.right, right)
    if disp is not None:
        assert rec.disparity.dtype == np.float32 and rec.disparity.shape == (H, W)


def test_sceneflow_layout(tmp_path):
    root = tmp_path / "FlyingThings3D"
    truth = {}
    for seq in ("0000", "0001"):
        for frame in ("0006", "0007"):
            left, right, disp = _pair(int(seq + frame))
            base = Path("TRAIN") / "A" / seq
            _png(root / "frames_finalpass" / base / "left" / f"{frame}.png", left)
            _png(root / "frames_finalpass" / base / "right" / f"{frame}.png", right)
            write_pfm(root / "disparity" / base / "left" / f"{frame}.pfm", disp)
            truth[f"TRAIN/A/{seq}/{frame}"] = (left, right, disp)
    ds = open_dataset("sceneflow", root)
    assert sorted(ds.names) == sorted(truth)
    for rec in ds:
        left, right, disp = truth[rec.name]
        _check(rec, left, right, disp)
        np.testing.assert_array_equal(rec.disparity, disp)
    assert len(open_dataset("sceneflow", root, split="TRAIN")) == 4
    with pytest.raises(DataFormatError, match="no sceneflow items"):
        open_dataset("sceneflow", root, split="TEST")


@pytest.mark.parametrize("version", [2012, 2015])
def test_kitti_layouts(tmp_path, version):
    root = tmp_path / f"kitti{version}" / "training"
    names = ("image_2", "image_3", "disp_occ_0", "disp_noc_0") if version == 2015 else (
        "colored_0", "colored_1", "disp_occ", "disp_noc")
    truth = {}
    for i in range(3):
        left, right, disp = _pair(i)
        disp[0, :5] = np.nan  # no GT there
        noc = disp.copy()
        noc[5, :] = np.nan  # occluded row
        stem = f"{i:06d}_10"
        _png(root / names[0] / f"{stem}.png", left)
        _png(root / names[1] / f"{stem}.png", right)
        _png(root / names[0] / f"{i:06d}_11.png", left)  # second frame: no GT, not listed
        write_kitti_disparity(root / names[2] / f"{stem}.png", disp)
        write_kitti_disparity(root / names[3] / f"{stem}.png", noc)
        truth[stem] = (left, right, disp)
    calib = root / ("calib_cam_to_cam" if version == 2015 else "calib") / "000000.txt"
    calib.parent.mkdir(parents=True)
    p2 = "P_rect_02" if version == 2015 else "P2"
    p3 = "P_rect_03" if version == 2015 else "P3"
    calib.write_text(f"{p2}: 721.5 0 609.6 44.9 0 721.5 172.9 0.2 0 0 1 0.003\n"
                     f"{p3}: 721.5 0 609.6 -339.5 0 721.5 172.9 2.2 0 0 1 0.003\n")
    ds = open_dataset(f"kitti{version}", root.parent)  # the parent of training/ works too
    assert ds.names == sorted(truth)
    rec = ds[0]
    left, right, disp = truth[rec.name]
    _check(rec, left, right, disp)
    np.testing.assert_allclose(rec.disparity, np.round(disp * 256) / 256, equal_nan=True)
    assert np.isnan(rec.disparity[0, :5]).all()
    assert not rec.nonocc[5].any() and rec.nonocc[6, 6]
    assert rec.calib["baseline"] == pytest.approx((44.9 + 339.5) / 721.5)
    assert ds[1].calib is None
    auto = open_dataset("kitti", root)
    assert auto.version == version and len(auto) == 3


def _middlebury_scene(folder: Path, seed: int, gt_folder: Path | None = None) -> tuple:
    left, right, disp = _pair(seed)
    disp[2, 3] = np.inf
    _png(folder / "im0.png", left)
    _png(folder / "im1.png", right)
    gt = gt_folder or folder
    write_pfm(gt / "disp0GT.pfm", disp)
    mask = np.full((H, W), 255, np.uint8)
    mask[:, :4] = 128
    _png(gt / "mask0nocc.png", mask)
    (folder / "calib.txt").write_text(
        "cam0=[1000.5 0 15.5; 0 1000.5 11.5; 0 0 1]\ncam1=[1000.5 0 17.5; 0 1000.5 11.5; 0 0 1]\n"
        "doffs=2.0\nbaseline=193.001\nwidth=32\nheight=24\nndisp=64\nisint=0\nvmin=1\nvmax=20\n")
    return left, right, disp


def test_middlebury_reader_and_a_corrupt_item(tmp_path):
    root = tmp_path / "MiddEval3" / "trainingQ"
    truth = {name: _middlebury_scene(root / name, i)
             for i, name in enumerate(["Adirondack", "Jadeplant", "Motorcycle"])}
    (root / "Jadeplant" / "im1.png").write_bytes(b"not a png at all")
    ds = open_dataset("middlebury", root)
    assert ds.names == ["Adirondack", "Jadeplant", "Motorcycle"]
    with pytest.raises(DataFormatError, match="Jadeplant.im1.png"):
        ds[1]
    records = list(ds.iter_with_errors())
    assert isinstance(records[1], ItemError) and "im1.png" in records[1].message
    good = list(ds)  # skips the bad one, keeps going
    assert [r.name for r in good] == ["Adirondack", "Motorcycle"]
    assert len(ds.errors) == 2  # once per pass
    rec = good[0]
    left, right, disp = truth["Adirondack"]
    _check(rec, left, right, disp)
    assert np.isnan(rec.disparity[2, 3])  # inf = unknown
    np.testing.assert_array_equal(rec.disparity[0, 5], disp[0, 5])
    assert not rec.nonocc[:, :4].any() and rec.nonocc[0, 5] and not rec.nonocc[2, 3]
    assert rec.calib["fx"] == 1000.5 and rec.calib["cx_right"] == 17.5
    assert rec.calib["doffs"] == 2.0 and rec.calib["ndisp"] == 64
    assert rec.calib["baseline_m"] == pytest.approx(0.193001)
    # One scene folder as the root works too.
    assert open_dataset("middlebury", root / "Motorcycle").names == ["Motorcycle"]


def test_size_mismatch_is_reported_with_the_file(tmp_path):
    root = tmp_path / "mb"
    _middlebury_scene(root / "A", 0)
    write_pfm(root / "A" / "disp0GT.pfm", np.ones((H + 1, W), np.float32))
    with pytest.raises(DataFormatError, match="disp0GT.pfm.*differs in size"):
        open_dataset("middlebury", root)[0]


def test_eth3d_with_separate_ground_truth_folder(tmp_path):
    root = tmp_path / "two_view_training"
    gt_root = tmp_path / "two_view_training_gt"
    truth = {}
    for i, name in enumerate(["delivery_area_1l", "electro_1l"]):
        (gt_root / name).mkdir(parents=True)
        truth[name] = _middlebury_scene(root / name, 10 + i, gt_root / name)
    ds = open_dataset("eth3d", root)
    assert ds.names == sorted(truth)
    for rec in ds:
        left, right, disp = truth[rec.name]
        _check(rec, left, right, disp)
        assert rec.nonocc is not None and rec.disparity is not None
    assert not ds.errors


def test_airsim_folder_depth_to_disparity(tmp_path):
    root = tmp_path / "capture"
    depth = np.full((H, W), 4.0, np.float32)
    depth[0, 0] = np.nan
    depth[0, 1] = 0.0
    for i in range(2):
        left, right, _ = _pair(i)
        _png(root / "left" / f"{i:06d}.png", left)
        _png(root / "right" / f"{i:06d}.png", right)
    (root / "depth").mkdir()
    np.save(root / "depth" / "000000.npy", depth)
    write_pfm(root / "depth" / "000001.pfm", depth * 2)
    (root / "calibration.json").write_text(json.dumps({"fx": 320.0, "baseline": 0.25,
                                                        "cx": 16, "cy": 12}))
    ds = open_dataset("airsim", root)
    assert ds.names == ["000000", "000001"]
    a, b = ds[0], ds[1]
    np.testing.assert_allclose(a.disparity[5, 5], 320 * 0.25 / 4.0)
    np.testing.assert_allclose(b.disparity[5, 5], 320 * 0.25 / 8.0)
    assert np.isnan(a.disparity[0, 0]) and np.isnan(a.disparity[0, 1])
    assert a.calib["fx"] == 320.0
    # YAML calibration works as well; a calibration without baseline is refused clearly.
    (root / "calibration.json").unlink()
    (root / "calib.yaml").write_text("fx: 320.0\nbaseline: 0.5\n")
    np.testing.assert_allclose(open_dataset("airsim", root)[0].disparity[5, 5], 40.0)
    (root / "calib.yaml").write_text("fx: 320.0\n")
    with pytest.raises(DataFormatError, match="calib.yaml.*baseline"):
        open_dataset("airsim", root)
    # Without depth/ the pairs come without ground truth (self-supervised fine-tuning).
    (root / "calib.yaml").unlink()
    for p in (root / "depth").iterdir():
        p.unlink()
    (root / "depth").rmdir()
    unlabeled = open_dataset("airsim", root)
    assert unlabeled[0].disparity is None


def test_airsim_missing_depth_file_fails_only_that_item(tmp_path):
    root = tmp_path / "cap"
    for i in range(3):
        left, right, _ = _pair(i)
        _png(root / "left" / f"{i:06d}.png", left)
        _png(root / "right" / f"{i:06d}.png", right)
        if i != 1:
            (root / "depth").mkdir(exist_ok=True)
            np.save(root / "depth" / f"{i:06d}.npy", np.ones((H, W), np.float32))
    (root / "calibration.json").write_text('{"fx": 100, "baseline": 0.1}')
    ds = open_dataset("airsim", root)
    assert [r.name for r in ds] == ["000000", "000002"]
    assert len(ds.errors) == 1 and "000001.npy" in ds.errors[0].message


def test_synthetic_dataset_and_factory_errors(tmp_path):
    ds = open_dataset("synthetic", count=2, seed=5, width=64, height=48, max_disparity=16)
    assert len(ds) == 2 and ds.names == ["seed5", "seed6"]
    rec = ds[0]
    assert rec.left.shape == (48, 64, 3) and np.all(rec.disparity > 0)
    assert rec.nonocc.dtype == bool and "instances" in rec.extra
    np.testing.assert_array_equal(rec.disparity, ds[0].disparity)  # seeded
    with pytest.raises(ValueError, match="unknown dataset kind"):
        open_dataset("holopix", tmp_path)
    with pytest.raises(DataFormatError, match="nowhere.*not found"):
        open_dataset("kitti", tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="no middlebury items"):
        open_dataset("middlebury", tmp_path)


@pytest.mark.skipif(not SHARED_MIDDLEBURY.is_dir(), reason="no ../shared/data/middlebury here")
def test_the_shared_middlebury_pairs_read_correctly():
    """The real validation pair: GT aligns the views (warp error lowest at zero shift)."""
    ds = open_dataset("middlebury", SHARED_MIDDLEBURY)
    assert len(ds) >= 1
    for rec in ds:
        d = rec.disparity
        assert rec.left.shape == rec.right.shape and d.shape == rec.left.shape[:2]
        valid = np.isfinite(d)
        assert valid.mean() > 0.5 and np.nanmin(d) > 0
        assert np.nanmax(d) <= rec.calib.get("ndisp", 1e9)
        h, w = d.shape
        errs = []
        for shift in (-2.0, 0.0, 2.0):
            mapx = (np.arange(w)[None, :] - np.nan_to_num(d) + shift).astype(np.float32)
            mapy = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, 1)
            warped = cv2.remap(rec.right.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR)
            errs.append(np.abs(warped - rec.left).mean(-1)[valid].mean())
        assert errs[1] < min(errs[0], errs[2])


def test_sceneflow_missing_disparity_names_the_file(tmp_path):
    root = tmp_path / "sf"
    for frame in ("0006", "0007"):
        left, right, disp = _pair(int(frame))
        _png(root / "frames_cleanpass" / "A" / "0000" / "left" / f"{frame}.png", left)
        _png(root / "frames_cleanpass" / "A" / "0000" / "right" / f"{frame}.png", right)
    write_pfm(root / "disparity" / "A" / "0000" / "left" / "0006.pfm", disp)
    ds = open_dataset("sceneflow", root, pass_name="cleanpass")
    assert [r.name for r in ds] == ["A/0000/0006"]
    assert "0007.pfm" in ds.errors[0].message and "not found" in ds.errors[0].message


def test_kitti_testing_split_has_no_ground_truth_and_grey_images_become_rgb(tmp_path):
    root = tmp_path / "kitti2012" / "testing"
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    for i in range(2):
        for cam in ("image_0", "image_1"):
            for frame in ("10", "11"):
                _png(root / cam / f"{i:06d}_{frame}.png", grey)
    ds = open_dataset("kitti", root)
    assert ds.version == 2012 and len(ds) == 4  # without GT every frame is an item
    rec = ds[0]
    assert rec.disparity is None and rec.nonocc is None
    assert rec.left.shape == (H, W, 3) and (rec.left[..., 0] == grey).all()
