"""Parameters and checkpoints sent to running node processes (`python -m ...` as `ros2 run`
starts them), over real DDS:

- a set_parameters request is applied as one: all of it or none of it, with the reason in every
  result, a warning in the node's log, the values read back unchanged and the next frame served;
- learned-backend settings that cannot work (a missing model, a device that is not one) are
  refused when they are set, even while the backend is sgbm;
- a value a node cannot start with (out of range, wrong type, not one of the choices, a device
  that is not one) ends in one line "NAME: cannot start: ..." and exit 1, no traceback;
- a pickled or corrupt checkpoint is refused naming the file and why, and the message never
  advises loading it unsafely (torch's own text does).
"""

import os

import numpy as np
import pytest
import torch
from node_process import NodeProcess, assert_no_traceback
from test_depth_node import GEOM, Harness
from test_reliability_inputs import LEFT, RIGHT

from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

DEPTH = "stereo_depth_ros.ros.depth_node"
NEAREST = "stereo_depth_ros.ros.nearest_object_node"
SGBM = {"backend": "sgbm", "disparity_range": 32, "correlation_window_size": 7, "diagnostics_period": 0.2}
UNSAFE_ADVICE = ("weights_only", "Re-running", "safe_globals", "trusted source", "arbitrary code execution")


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    """name -> (path, words its refusal must name); and the marker the payloads would create."""
    d = tmp_path_factory.mktemp("bad_ckpt")
    marker = d / "PWNED"
    torch.save({"format": "stereo_depth_ros.checkpoint", "meta": {"x": _Payload(marker)}}, d / "pickled.pt")
    import pickle

    (d / "raw_pickle.pt").write_bytes(pickle.dumps({"x": _Payload(marker)}))
    (d / "corrupt.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"x": np.zeros(3)}, d / "numpy.pt")   # torch's text: "add_safe_globals ... if you trust"
    return {"pickled": (d / "pickled.pt", ["refusing checkpoint", "posix.system", "could execute code"]),
            "raw_pickle": (d / "raw_pickle.pt", ["refusing checkpoint", "pickle instruction"]),
            "corrupt": (d / "corrupt.pt", ["refusing checkpoint", "corrupt or truncated"]),
            "numpy": (d / "numpy.pt", ["refusing checkpoint", "numpy", "could execute code"])}, marker


class Served:
    """A depth node process (sgbm) with a harness in the test's graph that feeds it pairs."""

    def __init__(self, graph, node, ns):
        self.graph, self.node = graph, node
        self.harness = graph.add(Harness(ns, graph.context))
        node.watch_diagnostics(self.harness)
        node.wait_for_line(r"backend sgbm on cpu")
        pubs = self.harness.pubs.values()
        assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 60), node.output

    def frame(self, stamp, timeout=60.0):
        """Send the plane pair until its outputs come back (the first sends may precede discovery)."""
        def arrived():
            return self.harness.got["disparity"].get(stamp) is not None
        for _ in range(3):
            self.harness.send(self.harness.messages(stamp, LEFT, RIGHT))
            if self.graph.wait_until(arrived, timeout / 3):
                break
        assert arrived(), f"no disparity for {stamp}:\n{self.node.output}"
        return self.harness.got["disparity"][stamp]

    def sgbm_frame(self, stamp):
        d = conv.disparity_from_msg(self.frame(stamp))
        assert np.nanmedian(d) == pytest.approx(10.0, abs=0.2)   # the plane, by sgbm

    def refused_as_one(self, values, *words):
        """A request none of which is applied: every result refused with the same reason naming
        ``words`` (and, for several parameters, that none applied), a warning in the log naming
        them, every value read back as before."""
        before = self.node.get_parameters(self.graph, self.harness, *values)
        mark = self.node.mark()
        results = self.node.set_parameters(self.graph, self.harness, values)
        assert [r.successful for r in results] == [False] * len(values)
        assert len({r.reason for r in results}) == 1
        for word in words:
            assert word in results[0].reason, results[0].reason
        if len(values) > 1:
            assert f"none of the {len(values)} parameters applied" in results[0].reason
        line = self.node.wait_for_line(r"\[WARN\].*not applied", start=mark, timeout=30)
        for word in words:
            assert word in line, line
        assert self.node.get_parameters(self.graph, self.harness, *values) == before
        return results[0].reason


def test_a_set_parameters_request_is_applied_as_one(graph, bad_checkpoints):
    checkpoints, marker = bad_checkpoints
    with NodeProcess(DEPTH, "/params_one", SGBM) as node:
        rig = Served(graph, node, "params_one")
        rig.sgbm_frame(1_000_000_000)
        # backend and model of one request: before, the backend was built with the old model
        # ("default_stereo.pt does not exist") while the model change was kept
        rig.refused_as_one({"backend": "learned", "model": "/nonexistent/net.pt"},
                           "/nonexistent/net.pt", "does not exist")
        rig.sgbm_frame(1_100_000_000)
        # an SGBM change riding with a bad device: neither applies
        rig.refused_as_one({"disparity_range": 48, "device": "bogus"}, "'bogus' is not a device")
        msg = rig.frame(1_150_000_000)
        assert msg.max_disparity == pytest.approx(31 - GEOM.doffs)   # disparity_range still 32
        if not torch.cuda.is_available():
            rig.refused_as_one({"backend": "learned", "model": "fast_cpu_candidate", "device": "cuda",
                                "strict_device": True}, "CUDA is not available", "strict_device forbids")
        # while the backend is sgbm, learned settings that cannot work are refused when set
        rig.refused_as_one({"model": "/nonexistent.pt"}, "/nonexistent.pt", "does not exist",
                           "checked although the backend is sgbm")
        rig.refused_as_one({"device": "bogus"}, "device 'bogus' is not a device: use auto, cpu, cuda")
        for name, (path, words) in checkpoints.items():   # refused checkpoints, over DDS
            reason = rig.refused_as_one({"model": str(path)}, str(path), *words)
            assert not any(a in reason for a in UNSAFE_ADVICE), (name, reason)
        rig.sgbm_frame(1_200_000_000)
        node.wait_counter(graph, "processed", 4)
        assert node.counter("backend_error") == 0
        # a good request: both applied together, the next frame from the learned backend
        mark = node.mark()
        good = {"backend": "learned", "model": "fast_cpu_candidate", "device": "cpu"}
        results = node.set_parameters(graph, rig.harness, good)
        assert all(r.successful for r in results), [r.reason for r in results]
        node.wait_for_line(r"parameters backend, device, model applied: backend learned on cpu", start=mark)
        assert node.get_parameters(graph, rig.harness, "backend", "model") == {
            "backend": "learned", "model": "fast_cpu_candidate"}
        msg = rig.frame(1_300_000_000, timeout=120)
        assert msg.max_disparity > 31 - GEOM.doffs   # the model's range, not sgbm's 32
        node.wait_counter(graph, "processed", 5)
        assert node.counter("backend_error") == 0
        assert node.stop() == 0
    assert_no_traceback(node.output)
    assert not marker.exists()


# start-up refusals, each a process of its own; run together (each spends seconds importing torch)
STARTUP_CASES = {
    "disparity_range": (DEPTH, {"disparity_range": 7}, ["parameter disparity_range := 7 is out of range",
                                                        "an integer from 32 to 4096 in steps of 16"]),
    "confidence_threshold": (DEPTH, {"confidence_threshold": 2.0}, ["confidence_threshold := 2.0 is out of "
                                                                    "range", "from 0 to 0.99"]),
    "queue_size": (DEPTH, {"queue_size": 0}, ["queue_size := 0 is out of range",
                                              "an integer from 1 to 1000"]),
    "baseline": (DEPTH, {"baseline": "abc"}, ["parameter baseline := abc is a string",
                                              "takes a floating-point number"]),
    "input_reliability": (DEPTH, {"input_reliability": "nonsense"}, ["input_reliability := 'nonsense' is not "
                                                                     "one of best_effort, reliable"]),
    "nearest_score_threshold": (NEAREST, {"score_threshold": 1.5}, ["score_threshold := 1.5 is out of range",
                                                                    "from 0.01 to 0.99"]),
    "nearest_device": (NEAREST, {"device": "bogus"}, ["device 'bogus' is not a device"]),
}


@pytest.fixture(scope="module")
def startups(bad_checkpoints):
    """case -> (exit status, output) of every start-up case, the processes run side by side."""
    checkpoints, _ = bad_checkpoints
    cases = dict(STARTUP_CASES)
    cases["ckpt_pickled"] = (DEPTH, {"backend": "learned", "model": str(checkpoints["pickled"][0])}, [])
    cases["ckpt_numpy"] = (NEAREST, {"backend": "unet", "model": str(checkpoints["numpy"][0])}, [])
    nodes = {k: NodeProcess(module, f"/start_{k}", params) for k, (module, params, _) in cases.items()}
    try:
        return {k: (node.wait_exit(timeout=300), node.output) for k, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.__exit__()


def _one_line(module, rc, output):
    lines = [ln for ln in output.splitlines() if ln.strip()]
    name = module.rsplit(".", 1)[-1]
    assert rc == 1, output
    assert len(lines) == 1 and lines[0].startswith(f"{name}: cannot start: "), output
    return lines[0]


@pytest.mark.parametrize("case", list(STARTUP_CASES))
def test_a_value_a_node_cannot_start_with_is_one_line_and_exit_1(startups, case):
    module, _, words = STARTUP_CASES[case]
    line = _one_line(module, *startups[case])
    for word in words:
        assert word in line, line


def test_a_refused_checkpoint_at_start_says_why_and_never_advises_an_unsafe_load(startups, bad_checkpoints):
    checkpoints, marker = bad_checkpoints
    for case, module, which in (("ckpt_pickled", DEPTH, "pickled"), ("ckpt_numpy", NEAREST, "numpy")):
        line = _one_line(module, *startups[case])
        path, words = checkpoints[which]
        for word in (str(path), *words):
            assert word in line, line
        assert not any(a in line for a in UNSAFE_ADVICE), line
    assert not marker.exists()


def test_more_start_up_values_refused_in_one_line(graph):
    """The same refusals, in-process (no torch import each): a device, a missing model with
    sgbm, an integer for a float, an output QoS that is not one."""
    from rclpy.parameter import Parameter

    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.ros.depth_node import DepthNode
    from stereo_depth_ros.ros.nearest_object_node import NearestObjectNode
    from stereo_depth_ros.ros.parameters import ParameterError

    for cls, values, error, words in (
            (DepthNode, {"baseline": 1}, ParameterError, ["baseline := 1 is an integer (write 1.0)"]),
            (DepthNode, {"device": "cuda:x"}, BackendError, ["device 'cuda:x' is not a device"]),
            (DepthNode, {"backend": "sgbm", "model": "/nonexistent.pt"}, BackendError,
             ["/nonexistent.pt", "does not exist", "checked although the backend is sgbm"]),
            (DepthNode, {"output_reliability": "sometimes"}, ParameterError,
             ["output_reliability := 'sometimes' is not one of best_effort, reliable"]),
            (NearestObjectNode, {"backend": "threshold", "input_reliability": "x"}, ParameterError,
             ["input_reliability := 'x' is not one of"]),
            (NearestObjectNode, {"backend": "threshold", "min_area": 0}, ParameterError,
             ["min_area := 0 is out of range: it takes an integer from 1 to 10000000"])):
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        with pytest.raises(error) as info:
            cls(namespace="inproc", context=graph.context, parameter_overrides=overrides)
        for word in words:
            assert word in str(info.value), str(info.value)
        assert "\n" not in str(info.value)
