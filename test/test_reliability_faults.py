"""Faults around the depth node over real rclpy/DDS: CUDA requested but absent, out-of-memory
on a large frame, one camera stalling and resuming, parameters changed at run time."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from stereo_scenes import plane_pair
from test_depth_node import GEOM, H, W
from test_reliability_inputs import LEFT, RIGHT, Rig

from stereo_depth_ros.backends import BackendError
from stereo_depth_ros.estimator import make_checkpoint, save_checkpoint
from stereo_depth_ros.models.registry import build_model
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

SMALL_NET = {"max_disparity": 32, "feat_half": 8, "feat_quarter": 8, "agg_channels": 8, "refine_channels": 8}


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_fast.pt"
    save_checkpoint(make_checkpoint(build_model("fast", **SMALL_NET), "fast", SMALL_NET,
                                    {"training_data": "none (untrained, test)"}), path)
    return path


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _received(rig, stamp):
    assert rig.graph.wait_until(lambda: rig.harness.got["disparity"].get(stamp) is not None, 10), stamp
    return rig.harness.got["disparity"][stamp]


def test_cuda_requested_but_unavailable_falls_back_to_cpu_with_a_warning(graph, checkpoint, no_cuda):
    rig = Rig(graph, "cuda_fallback", [Parameter("backend", value="learned"),
                                       Parameter("model", value=str(checkpoint)),
                                       Parameter("device", value="cuda")])
    node = rig.node
    assert node.backend.name == "learned" and node.backend.device.type == "cpu"
    assert "device 'cuda' requested but CUDA is not available: running on the CPU" in node.backend_note
    rig.send(10_000_000_000)
    msg = _received(rig, 10_000_000_000)   # the untrained net's values mean nothing; it runs
    assert msg.max_disparity == pytest.approx(32 - GEOM.doffs)
    _, values = rig.diagnostic(lambda s: any(kv.key == "processed" and kv.value == "1" for kv in s.values))
    assert values["device"] == "cpu" and values["backend"] == "learned"


def test_strict_device_fails_clearly_instead(graph, checkpoint, no_cuda):
    with pytest.raises(BackendError, match="CUDA is not available, and strict_device forbids"):
        DepthNode(namespace="strict", context=graph.context, parameter_overrides=[
            Parameter("backend", value="learned"), Parameter("model", value=str(checkpoint)),
            Parameter("device", value="cuda"), Parameter("strict_device", value=True)])
    # the same, asked of a running node: rejected with the reason, the old backend kept
    rig = Rig(graph, "strict_runtime", [Parameter("strict_device", value=True)])
    result = rig.node.set_parameters([Parameter("model", value=str(checkpoint)),   # one at a time,
                                      Parameter("device", value="cuda"),           # as `ros2 param set`
                                      Parameter("backend", value="learned")])
    assert [r.successful for r in result] == [True, True, False]
    assert "strict_device forbids falling back" in result[2].reason
    assert rig.node.backend.name == "sgbm"
    rig.served(10_100_000_000)


class _MemoryHungry:
    """SGBM that runs out of memory on frames wider than ``limit`` pixels."""

    def __init__(self, inner, limit, error):
        self.inner, self.limit, self.error = inner, limit, error
        self.name, self.device, self.params = inner.name, inner.device, inner.params

    def compute(self, left, right):
        if left.shape[1] > self.limit:
            raise self.error
        return self.inner.compute(left, right)


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB"),
                                   MemoryError("cannot allocate 6 GB")], ids=["cuda_oom", "host_oom"])
def test_out_of_memory_on_a_large_frame_skips_it_and_continues(graph, error):
    rig = Rig(graph, "oom_" + type(error).__name__.lower())
    rig.node.backend = _MemoryHungry(rig.node.backend, limit=W - 1, error=error)
    rig.refused(11_000_000_000, "out_of_memory", f"ran out of memory on a {W}x{H} frame")
    rig.nothing_for(11_000_000_000)
    small = replace(GEOM, width=128)   # the next, smaller frame is served
    left, right = plane_pair(H, 128, 12, seed=6)
    rig.send(11_100_000_000, left=left, right=right, geometry=small)
    d = conv.disparity_from_msg(_received(rig, 11_100_000_000))
    assert d.shape == (H, 128) and np.nanmedian(d) == pytest.approx(10.0, abs=0.2)
    assert rig.node.counters["backend_error"] == 0
    _, values = rig.diagnostic(lambda s: {(kv.key, kv.value) for kv in s.values}
                               >= {("out_of_memory", "1"), ("processed", "1")})
    assert values["backend_error"] == "0"


def test_one_camera_stalls_and_resumes_without_restart(graph):
    rig = Rig(graph, "stall", [Parameter("stall_timeout", value=0.4),
                               Parameter("diagnostics_period", value=0.1)])
    t = 12_000_000_000
    for _ in range(3):   # both cameras
        t += 100_000_000
        rig.served(t)
    silent = []
    for _ in range(10):   # the right camera stops for a second
        t += 100_000_000
        msgs = rig.harness.messages(t, LEFT, RIGHT)
        rig.harness.pubs["left/image_rect"].publish(msgs["left/image_rect"])
        rig.harness.pubs["left/camera_info"].publish(msgs["left/camera_info"])
        silent.append(t)
        graph.wait_until(lambda: False, timeout=0.1)
    status, values = rig.diagnostic(lambda s: any(kv.key == "silent_inputs" and kv.value
                                                  for kv in s.values))
    assert status.level == DiagnosticStatus.WARN
    assert "right/image_rect silent for" in status.message and "right/camera_info" in status.message
    assert "left/" not in values["silent_inputs"]
    rig.nothing_for(*silent)
    for _ in range(3):   # it resumes: pairs again, no restart
        t += 100_000_000
        rig.served(t)
    n = len(rig.diagnostics)
    status, values = rig.diagnostic(lambda s: rig.diagnostics.index(s) >= n and {
        (kv.key, kv.value) for kv in s.values} >= {("silent_inputs", ""), ("processed", "6")})
    assert "silent for" not in status.message.split("(")[0]
    assert values["input_stall"] == "1" and values["processed"] == "6"
    assert int(values["unsynchronized"]) >= 10   # the left frames of the gap, counted


def test_run_time_parameters_take_effect_or_are_rejected_with_a_reason(graph, checkpoint):
    rig = Rig(graph, "params")
    node = rig.node
    # disparity_range: applied to the next frame
    assert node.set_parameters([Parameter("disparity_range", value=48)])[0].successful
    msg = _received(rig, rig.send(13_000_000_000) and 13_000_000_000)
    assert msg.max_disparity == pytest.approx(47 - GEOM.doffs) and node.backend.params.disparity_range == 48
    bad = node.set_parameters([Parameter("disparity_range", value=40)])[0]
    assert not bad.successful and "40" in bad.reason and node.backend.params.disparity_range == 48
    # max_disparity belongs to the learned backend
    bad = node.set_parameters([Parameter("max_disparity", value=20.0)])[0]
    assert not bad.successful and "applies to the learned backend" in bad.reason
    bad = node.set_parameters([Parameter("confidence_threshold", value=0.5)])[0]
    assert not bad.successful and "applies to the learned backend" in bad.reason
    # backend switch at run time: to learned, then a broken model is refused and learned stays
    result = node.set_parameters([Parameter("model", value=str(checkpoint)), Parameter("device", value="cpu"),
                                  Parameter("backend", value="learned")])
    assert all(r.successful for r in result)
    assert node.backend.name == "learned"
    msg = _received(rig, rig.send(13_100_000_000) and 13_100_000_000)
    assert msg.max_disparity == pytest.approx(32 - GEOM.doffs)   # the model's range
    assert node.set_parameters([Parameter("max_disparity", value=20.0)])[0].successful
    msg = _received(rig, rig.send(13_200_000_000) and 13_200_000_000)
    assert msg.max_disparity == pytest.approx(20 - GEOM.doffs)
    d = conv.disparity_from_msg(msg)
    assert np.all(~np.isfinite(d) | (d <= 20 - GEOM.doffs + 1e-4))
    # confidence_threshold re-wraps the same estimator and keeps max_disparity
    assert node.set_parameters([Parameter("confidence_threshold", value=0.99)])[0].successful
    assert node.backend.confidence_threshold == pytest.approx(0.99)
    msg = _received(rig, rig.send(13_250_000_000) and 13_250_000_000)
    assert msg.max_disparity == pytest.approx(20 - GEOM.doffs)
    assert np.isfinite(conv.disparity_from_msg(msg)).sum() < np.isfinite(d).sum()
    assert node.set_parameters([Parameter("confidence_threshold", value=0.0)])[0].successful
    bad = node.set_parameters([Parameter("model", value="/nonexistent/net.pt")])[0]
    assert not bad.successful and "/nonexistent/net.pt" in bad.reason and "does not exist" in bad.reason
    bad = node.set_parameters([Parameter("backend", value="magic")])[0]
    assert not bad.successful and "unknown backend 'magic'" in bad.reason
    assert node.backend.name == "learned" and node.get_parameter("backend").value == "learned"
    # back to sgbm: the SGBM settings made meanwhile hold
    assert node.set_parameters([Parameter("backend", value="sgbm")])[0].successful
    assert node.backend.name == "sgbm" and node.backend.params.disparity_range == 48
    rig.served(13_300_000_000)
    bad = node.set_parameters([Parameter("queue_size", value=9)])[0]
    assert not bad.successful and "read-only" in bad.reason
