"""`stereo-depth record` writes the synthetic camera's frames; replaying the bag through the
live depth node with the evaluator node gives a report with real numbers."""

import numpy as np
import pytest

from stereo_depth_ros.cli import main
from stereo_depth_ros.commands.record import make_rig, record_bag
from stereo_depth_ros.data.synthetic import SceneSequence
from stereo_depth_ros.evaluation import bag_io


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_record_writes_frames_with_ground_truth_and_camera_info(tmp_path, storage):
    counts = record_bag(tmp_path / "bag", frames=3, width=96, height=64, rate=20.0, seed=4,
                        storage=storage, start_ns=10**18)
    assert set(counts.values()) == {3} and len(counts) == 6
    seq = SceneSequence(4, make_rig(96, 64))
    with bag_io.open_bag(tmp_path / "bag") as bag:
        frames = list(bag_io.stereo_frames(bag, extras={"gt": "ground_truth/disparity",
                                                         "depth": "ground_truth/depth"}))
    assert [f.stamp_ns for f in frames] == [10**18, 10**18 + 50_000_000, 10**18 + 100_000_000]
    for i, frame in enumerate(frames):
        sample = seq.frame(i)
        np.testing.assert_array_equal(bag_io.image_to_rgb(frame.left), sample.left)
        np.testing.assert_array_equal(bag_io.image_to_rgb(frame.right), sample.right)
        np.testing.assert_array_equal(bag_io.float_image(frame.extras["gt"]), sample.disparity)
        np.testing.assert_array_equal(bag_io.float_image(frame.extras["depth"]), sample.depth)
        p_left, p_right = sample.rig.projections()
        assert list(frame.left_info.p) == pytest.approx(p_left)
        assert list(frame.right_info.p) == pytest.approx(p_right)
        assert frame.left.header.frame_id == frame.left_info.header.frame_id != ""


def test_record_command_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "bag").mkdir()
    assert main(["record", "--out", str(tmp_path / "bag"), "--frames", "1"]) == 2
    assert "exists" in capsys.readouterr().err
