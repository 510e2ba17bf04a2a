"""The training curve command: stages joined by their step offsets, a PNG written."""

import cv2

from stereo_depth_ros.training.curve import main, read_curves


def _log(folder, rows):
    folder.mkdir()
    lines = ["step,real_bad3,synthetic_bad3"] + [f"{s},{r},{y}" for s, r, y in rows]
    (folder / "val_log.csv").write_text("\n".join(lines) + "\n")


def test_stages_join_and_the_png_is_written(tmp_path, capsys):
    _log(tmp_path / "s1", [(500, 0.2, 0.3), (1000, 0.15, 0.25)])
    _log(tmp_path / "s2", [(500, 0.12, 0.2)])
    curves = read_curves([(tmp_path / "s1", 0), (tmp_path / "s2", 1000)], ("real_bad3", "missing"))
    assert curves == {"real_bad3": ([500.0, 1000.0, 1500.0], [0.2, 0.15, 0.12])}
    out = tmp_path / "curve.png"
    assert main([str(tmp_path / "s1"), f"{tmp_path / 's2'}:1000", "--out", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (360, 720, 3)
    assert "real_bad3: 3 points, last 0.1200 at step 1500" in capsys.readouterr().out


def test_bad_runs_are_reported(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.png")]) == 2
    assert "no validation log" in capsys.readouterr().err


def test_the_step_axis_ends_on_a_round_number():
    from stereo_depth_ros.evaluation.report import _nice_ceiling

    assert _nice_ceiling(9192) == 10000
    assert _nice_ceiling(1000) == 1000
    assert _nice_ceiling(1001) == 1500
    assert _nice_ceiling(0.23) == 0.25
    assert _nice_ceiling(7) == 8
