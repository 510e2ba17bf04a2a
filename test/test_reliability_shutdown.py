"""SIGTERM / SIGINT while the learned backend is working on a frame, sent to a depth node process
fed over DDS: the worker notices the shutdown and stops without a word. Before, the frame's
publish ran into the invalidated context and logged `unexpected error: RCLError("failed to get
subscription count: publisher's context is invalid") [backend_error: 1]` and "Failed to publish
log message to rosout" (4 of 4 runs in the probe; here 2 of 3 runs at 160x96, 3 of 3 at 320x192)."""

import signal
import time

import pytest
from node_process import NodeProcess, assert_no_traceback
from stereo_scenes import plane_pair
from test_depth_node import GEOM, Harness

from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

H, W = 192, 320   # the learned model works for hundreds of ms per frame here: signals land inside it
LEFT, RIGHT = plane_pair(H, W, 12, seed=5)
BIG = GEOM.scaled(2.0)


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_a_signal_during_learned_processing_stops_quietly(graph, sig, request):
    ns = f"stop_{request.node.callspec.id}"
    harness = graph.add(Harness(ns, graph.context))
    with NodeProcess("stereo_depth_ros.ros.depth_node", f"/{ns}",
                     {"backend": "learned", "model": "fast_cpu_candidate", "device": "cpu"}) as node:
        node.wait_for_line(r"backend learned on cpu")
        pubs = harness.pubs.values()
        assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 60)
        stamp = 1_000_000_000
        deadline = time.monotonic() + 120
        while len(harness.got["disparity"]) < 2 and time.monotonic() < deadline:   # it works
            stamp += 50_000_000
            harness.send(harness.messages(stamp, LEFT, RIGHT, geometry=BIG))
            time.sleep(0.05)
        assert len(harness.got["disparity"]) >= 2, node.output
        for _ in range(4):   # pairs keep coming: the worker is busy when the signal lands
            stamp += 50_000_000
            harness.send(harness.messages(stamp, LEFT, RIGHT, geometry=BIG))
            time.sleep(0.05)
        rc = node.stop(sig)
    out = node.output
    assert rc == 0, out
    assert_no_traceback(out)
    for text in ("RCLError", "context is invalid", "[backend_error: ", "unexpected error", "[ERROR]"):
        assert text not in out, out
