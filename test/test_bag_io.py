"""rosbag2 read/write through rosbags: round trips (sqlite3, MCAP), stereo pairing, bad bags."""

import numpy as np
import pytest

from stereo_depth_ros.evaluation import bag_io
from stereo_depth_ros.geometry import StereoGeometry

GEOM = StereoGeometry(fx=100.0, fy=100.0, cx=31.5, cy=23.5, cx_right=31.5, baseline=0.1, width=64, height=48)


def _write_bag(path, storage="sqlite3", frames=3, drop_right=(), skew_ns=0):
    rng = np.random.default_rng(0)
    lefts = []
    with bag_io.BagWriter(path, storage) as bag:
        for i in range(frames):
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            left = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            lefts.append(left)
            disp = np.full((48, 64), 2.0 + i, np.float32)
            bag.write("/left/camera_info", bag_io.camera_info(GEOM, False, t, "left_optical"), t)
            bag.write("/left/image_rect", bag_io.numpy_to_image(left, "rgb8", t, "left_optical"), t)
            if i not in drop_right:
                bag.write("/right/camera_info", bag_io.camera_info(GEOM, True, t + skew_ns, "r"), t)
                bag.write("/right/image_rect",
                          bag_io.numpy_to_image(left[:, :, ::-1], "bgr8", t + skew_ns, "right_optical"), t)
            bag.write("/ground_truth/disparity", bag_io.numpy_to_image(disp, "32FC1", t, "left_optical"), t)
    return lefts


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_pairs_frames_and_keeps_pixels(tmp_path, storage):
    lefts = _write_bag(tmp_path / "bag", storage)
    with bag_io.open_bag(tmp_path / "bag") as bag:
        assert bag.topics["/left/image_rect"].count == 3
        assert bag.topics["/ground_truth/disparity"].msgtype == bag_io.IMAGE
        frames = list(bag_io.stereo_frames(bag, extras={"gt": "ground_truth/disparity"}))
    assert len(frames) == 3
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(bag_io.image_to_rgb(frame.left), lefts[i])
        # right was written as BGR of the same pixels: back to RGB it is the left image
        np.testing.assert_array_equal(bag_io.image_to_rgb(frame.right), lefts[i])
        gt = bag_io.float_image(frame.extras["gt"])
        assert gt.dtype == np.float32 and np.all(gt == 2.0 + i)
        geom = bag_io.geometry_from_infos(frame.left_info, frame.right_info)
        assert geom.baseline == pytest.approx(0.1) and geom.fx == pytest.approx(100.0)


def test_pairing_counts_unpaired_and_honours_tolerance(tmp_path):
    _write_bag(tmp_path / "bag", frames=4, drop_right=(1,), skew_ns=2_000_000)
    with bag_io.open_bag(tmp_path / "bag") as bag:
        stats = bag_io.PairingStats()
        exact = list(bag_io.stereo_frames(bag, stats=stats))
        assert exact == [] and len(stats.unpaired_left) == 4  # 2 ms skew, exact sync
        stats = bag_io.PairingStats()
        frames = list(bag_io.stereo_frames(bag, tolerance_ns=5_000_000, stats=stats))
    assert len(frames) == 3 and stats.paired == 3 and len(stats.unpaired_left) == 1


def test_disparity_image_and_strided_image_conversions():
    disp = np.arange(12, dtype=np.float32).reshape(3, 4)
    disp[0, 0] = np.nan
    msg = bag_io.disparity_image(disp, GEOM, 5, "f", 0.0, 64.0, 0.25, (1, 0, 3, 3))
    assert msg.t == pytest.approx(0.1) and msg.valid_window.x_offset == 1 and msg.delta_d == 0.25
    out = bag_io.float_image(msg.image)
    assert np.isnan(out[0, 0]) and np.array_equal(out[1:], disp[1:])
    # padded rows (step > width * channels) and big-endian data are read correctly
    img = bag_io.numpy_to_image(np.arange(6, dtype=np.uint8).reshape(2, 3), "mono8", 0, "f")
    img.step = 4
    img.data = np.array([0, 1, 2, 99, 3, 4, 5, 99], np.uint8)
    assert bag_io.image_to_numpy(img).tolist() == [[0, 1, 2], [3, 4, 5]]
    be = bag_io.numpy_to_image(np.zeros((1, 2), np.float32), "32FC1", 0, "f")
    be.is_bigendian = 1
    be.data = np.array([1.5, -2.0], dtype=">f4").view(np.uint8)
    assert bag_io.float_image(be).tolist() == [[1.5, -2.0]]
    with pytest.raises(ValueError, match="too short"):
        img.data = img.data[:5]
        bag_io.image_to_numpy(img)


def test_missing_empty_and_corrupt_bags_name_the_file(tmp_path):
    with pytest.raises(bag_io.BagError, match="nope"):
        bag_io.open_bag(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(bag_io.BagError, match="plain.*metadata.yaml"):
        bag_io.open_bag(tmp_path / "plain")
    with bag_io.BagWriter(tmp_path / "empty"):
        pass
    with pytest.raises(bag_io.BagError, match="empty.*empty"):
        bag_io.open_bag(tmp_path / "empty")
    # a truncated MCAP file: the reader fails, the error names the bag
    _write_bag(tmp_path / "cut", "mcap")
    mcap = next((tmp_path / "cut").glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(bag_io.BagError, match="cut"):
        with bag_io.open_bag(tmp_path / "cut") as bag:
            list(bag_io.stereo_frames(bag))
    # a corrupt sqlite3 file
    _write_bag(tmp_path / "bad", "sqlite3")
    db = next((tmp_path / "bad").glob("*.db3"))
    db.write_bytes(b"not a database" * 100)
    with pytest.raises(bag_io.BagError, match="bad"):
        with bag_io.open_bag(tmp_path / "bad") as bag:
            list(bag_io.stereo_frames(bag))


def test_writer_never_overwrites_and_topics_resolve_by_suffix(tmp_path):
    _write_bag(tmp_path / "bag", frames=1)
    with pytest.raises(bag_io.BagError, match="exists"):
        bag_io.BagWriter(tmp_path / "bag")
    with bag_io.open_bag(tmp_path / "bag") as bag:
        assert bag.resolve("left/image_rect") == "/left/image_rect"
        assert bag.resolve("image_rect", required=False) is None  # ambiguous -> none
        with pytest.raises(bag_io.BagError, match="ambiguous"):
            bag.resolve("image_rect")
        with pytest.raises(bag_io.BagError, match="no topic"):
            bag.resolve("depth")
