"""Bad files: checkpoints (corrupt, truncated, empty, wrong architecture, tampered, and one that
would run code if unpickled), rosbags and dataset files. Every error names the file; a
set under evaluation loses only its bad item. (Missing/empty/plain-directory bags, truncated
MCAP, corrupt sqlite, bad PFM/PNG and a corrupt dataset image are in test_bag_io.py,
test_formats.py, test_readers.py and test_eval_dataset.py.)"""

import json
import os
import sqlite3

import numpy as np
import pytest
import torch
from stereo_scenes import plane_pair

from stereo_depth_ros.backends import BackendError, make_backend
from stereo_depth_ros.cli import main
from stereo_depth_ros.estimator import (
    CheckpointError,
    StereoEstimator,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from stereo_depth_ros.evaluation import bag_io
from stereo_depth_ros.geometry import StereoGeometry
from stereo_depth_ros.models.registry import build_model
from stereo_depth_ros.nearest import load_unet_checkpoint

NET = {"max_disparity": 32, "feat_half": 8, "feat_quarter": 8, "agg_channels": 8, "refine_channels": 8}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    return save_checkpoint(make_checkpoint(build_model("fast", **NET), "fast", NET), path)


def _refused(path, *words):
    """The estimator and the learned backend both refuse ``path``, naming it and the fault."""
    for call in (lambda: StereoEstimator.from_checkpoint(path, device="cpu"),
                 lambda: make_backend("learned", model=str(path), device="cpu")):
        with pytest.raises((CheckpointError, BackendError)) as info:
            call()
        for word in (str(path), *words):
            assert word in str(info.value), str(info.value)


def test_the_good_checkpoint_loads(good):
    est = StereoEstimator.from_checkpoint(good, device="cpu")
    assert est.arch == "fast" and est.max_disparity == 32


def test_corrupt_truncated_and_empty_checkpoints(good, tmp_path):
    data = good.read_bytes()
    cases = {"random.pt": np.random.default_rng(0).bytes(4096), "half.pt": data[: len(data) // 2],
             "tail_cut.pt": data[:-200], "empty.pt": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        _refused(tmp_path / name, "corrupt or truncated")


def test_wrong_architecture_checkpoints(good, tmp_path):
    ckpt = torch.load(good, weights_only=True)
    unknown = dict(ckpt, arch="resnet9000")
    torch.save(unknown, tmp_path / "unknown.pt")
    _refused(tmp_path / "unknown.pt", "unknown architecture 'resnet9000'")
    # weights of a small net under the config of a bigger one
    bigger = dict(ckpt, config=dict(NET, feat_half=16))
    torch.save(bigger, tmp_path / "bigger.pt")
    _refused(tmp_path / "bigger.pt", "has shape", "architecture expects")
    # the nearest-object U-Net handed to the depth backend, and a stereo net to the U-Net loader
    save_checkpoint(make_checkpoint(build_model("unet"), "unet", {}), tmp_path / "unet.pt")
    _refused(tmp_path / "unet.pt", "nearest-object U-Net", "not a stereo network")
    with pytest.raises(CheckpointError, match="holds a 'fast' model, not the nearest-object U-Net"):
        load_unet_checkpoint(good)


def test_tampered_checkpoints(good, tmp_path):
    ckpt = torch.load(good, weights_only=True)
    first = next(iter(ckpt["state_dict"]))
    missing = dict(ckpt, state_dict={k: v for k, v in ckpt["state_dict"].items() if k != first})
    renamed = dict(ckpt, state_dict={("x" + k if k == first else k): v
                                     for k, v in ckpt["state_dict"].items()})
    not_tensor = dict(ckpt, state_dict=dict(ckpt["state_dict"], **{first: [1.0, 2.0]}))
    untagged = {k: v for k, v in ckpt.items() if k != "format"}
    future = dict(ckpt, format_version=99)
    no_weights = dict(ckpt, state_dict="gone")
    for name, content, words in (
            ("missing.pt", missing, ["do not match", first]),
            ("renamed.pt", renamed, ["unexpected", "x" + first]),
            ("not_tensor.pt", not_tensor, [first, "has shape list"]),
            ("untagged.pt", untagged, ["not a stereo_depth_ros checkpoint"]),
            ("future.pt", future, ["format 99, newer than this package"]),
            ("no_weights.pt", no_weights, ["missing or malformed 'state_dict'"])):
        torch.save(content, tmp_path / name)
        _refused(tmp_path / name, *words)


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs_it(good, tmp_path):
    marker = tmp_path / "PWNED"
    ckpt = torch.load(good, weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save(dict(ckpt, meta={"note": _Payload(marker)}), evil)
    # the payload is live: an unsafe load would run it (shown here in a scratch copy)
    probe = tmp_path / "probe"
    torch.save({"x": _Payload(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert probe.exists()
    # every loader of the package refuses it without running it
    _refused(evil, "refusing checkpoint", "could execute code")
    with pytest.raises(CheckpointError, match="refusing checkpoint"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refusing checkpoint"):
        load_unet_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.ros
def test_the_depth_node_refuses_a_bad_checkpoint_at_start(good, tmp_path):
    from rclpy.parameter import Parameter

    from stereo_depth_ros.ros.depth_node import DepthNode
    from stereo_depth_ros.ros.graph import NodeGraph

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save(dict(torch.load(good, weights_only=True), meta={"x": _Payload(marker)}), evil)
    with NodeGraph() as graph:
        with pytest.raises(BackendError, match="refusing checkpoint .*evil.pt"):
            DepthNode(namespace="evil", context=graph.context, parameter_overrides=[
                Parameter("backend", value="learned"), Parameter("model", value=str(evil))])
    assert not marker.exists()


# ------------------------------------------------------------------ rosbags

H, W = 96, 160
GEOM = StereoGeometry(fx=100.0, fy=100.0, cx=79.5, cy=47.5, cx_right=79.5, baseline=0.1, width=W, height=H)


def _bag(path, frames=4, storage="sqlite3"):
    with bag_io.BagWriter(path, storage) as bag:
        for i in range(frames):
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            left, right = plane_pair(H, W, 10, seed=i)
            bag.write("/left/camera_info", bag_io.camera_info(GEOM, False, t, "left"), t)
            bag.write("/right/camera_info", bag_io.camera_info(GEOM, True, t, "right"), t)
            bag.write("/left/image_rect", bag_io.numpy_to_image(left, "rgb8", t, "left"), t)
            bag.write("/right/image_rect", bag_io.numpy_to_image(right, "rgb8", t, "right"), t)
            disp = np.full((H, W), 10.0, np.float32)
            bag.write("/ground_truth/disparity", bag_io.numpy_to_image(disp, "32FC1", t, "left"), t)
    return path


def test_truncated_sqlite_bad_metadata_and_empty_storage_files_name_the_bag(tmp_path):
    cut = _bag(tmp_path / "cut")
    db = next(cut.glob("*.db3"))
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    with pytest.raises(bag_io.BagError, match="cut"):
        with bag_io.open_bag(cut) as bag:
            list(bag_io.stereo_frames(bag))
    meta = _bag(tmp_path / "badmeta")
    (meta / "metadata.yaml").write_text("rosbag2_bagfile_information: [this is: not {valid")
    with pytest.raises(bag_io.BagError, match="badmeta"):
        bag_io.open_bag(meta)
    zero = _bag(tmp_path / "zero", storage="mcap")
    next(zero.glob("*.mcap")).write_bytes(b"")
    with pytest.raises(bag_io.BagError, match="zero"):
        with bag_io.open_bag(zero) as bag:
            list(bag_io.stereo_frames(bag))
    rc = main(["eval-bag", str(cut), "--model", "sgbm", "--out", str(tmp_path / "o")])
    assert rc != 0   # a clear error, no traceback


def test_eval_bag_skips_a_frame_with_an_undecodable_message_and_finishes(tmp_path, capsys):
    bag = _bag(tmp_path / "onebad", frames=4)
    db = next(bag.glob("*.db3"))
    with sqlite3.connect(db) as con:   # frame 1's right image: header intact, pixels cut off
        rows = con.execute("SELECT m.id, m.data FROM messages m JOIN topics t ON m.topic_id = t.id "
                           "WHERE t.name = '/right/image_rect' ORDER BY m.timestamp").fetchall()
        con.execute("UPDATE messages SET data = ? WHERE id = ?", (rows[1][1][:64], rows[1][0]))
    out = tmp_path / "report"
    rc = main(["eval-bag", str(bag), "--model", "sgbm", "--out", str(out), "--figures", "0"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "t=1700000000.100" in err and "cannot be decoded" in err and str(bag) in err
    run = json.loads((out / "results.json").read_text())["models"][0]
    assert run["summary"]["frames"] == 3 and run["summary"]["failed"] == 1
    assert run["summary"]["epe"] < 1.0   # the three good frames were really evaluated


def test_sgbm_on_an_image_too_small_for_its_range_is_a_clear_backend_error():
    backend = make_backend("sgbm", disparity_range=64)
    img = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(BackendError, match="64x48 image is too small for disparity_range 64"):
        backend.compute(img, img)


# ------------------------------------------------------------------ dataset files

def test_empty_and_truncated_dataset_files_are_reported_and_the_rest_evaluated(tmp_path, capsys):
    from test_eval_dataset import _middlebury_scene

    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    rig = StereoRig.for_size(160, 120)
    root = tmp_path / "mb"
    names = ["Alpha-perfect", "Bravo-perfect", "Charlie-perfect", "Delta-perfect"]
    for i, name in enumerate(names):
        _middlebury_scene(root, name, render_random(1_000_000 + i, rig, max_disparity=40))
    (root / "Bravo-perfect" / "disp0GT.pfm").write_bytes(b"")                       # empty
    pfm = root / "Charlie-perfect" / "disp0GT.pfm"
    pfm.write_bytes(pfm.read_bytes()[:-1000])                                        # truncated
    (root / "Delta-perfect" / "im0.png").write_bytes(b"")                            # empty image
    out = tmp_path / "out"
    rc = main(["eval", "--dataset", "middlebury", "--root", str(root), "--model", "sgbm",
               "--max-disp", "48", "--out", str(out), "--figures", "0"])
    err = capsys.readouterr().err
    assert rc == 0
    run = json.loads((out / "results.json").read_text())["models"][0]
    assert run["summary"]["frames"] == 1 and run["summary"]["failed"] == 3
    errors = " ".join(e["error"] for e in run["errors"])
    for path in ("Bravo-perfect/disp0GT.pfm", "Charlie-perfect/disp0GT.pfm", "Delta-perfect/im0.png"):
        assert path in errors and path in err
    assert 0.0 < run["summary"]["epe"] < 20.0
