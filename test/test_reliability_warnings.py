"""Cases a depth node process used to accept without a word, sent over DDS; each is now named in
a log line and a /diagnostics counter, and the next good pair is served:

- left fx != right fx: warned (fx_mismatch) and processed: the depth image uses the left fx,
  DisparityImage.f is the right one, and the warning gives the factor between them;
- a set stamped 0 (zero_stamp) or far ahead of the node's clock (future_stamp): refused, no
  output carries that stamp, and the ordering guard is not disturbed (no time_reset after);
- a slow source whose large image arrives a while after its camera_info is not a stall; one
  camera that stops still is.
"""

import re
import time

import numpy as np
import pytest
from node_process import NodeProcess, assert_no_traceback
from stereo_scenes import plane_pair
from test_depth_node import GEOM, Harness
from test_reliability_inputs import LEFT, RIGHT

from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

DEPTH = "stereo_depth_ros.ros.depth_node"
SGBM = {"backend": "sgbm", "disparity_range": 32, "correlation_window_size": 7, "diagnostics_period": 0.2}
WARM_UP = 500_000_000   # the stamp of the set each test starts with (processed = 1)


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


class Fed:
    """A depth node process and the harness that feeds it (see test_depth_node.Harness)."""

    def __init__(self, graph, ns, params):
        self.graph = graph
        self.node = NodeProcess(DEPTH, f"/{ns}", params)
        self.harness = graph.add(Harness(ns, graph.context))
        self.node.watch_diagnostics(self.harness)
        self.node.wait_for_line(r"backend sgbm on cpu")
        pubs = self.harness.pubs.values()
        assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                                and self.harness.count_publishers("disparity") > 0, 60), self.node.output
        for _ in range(5):   # the first sets may go out before both sides have matched: warm up
            self.send(WARM_UP)
            if graph.wait_until(lambda: self.harness.got["disparity"].get(WARM_UP) is not None, 10):
                break
        self.outputs(WARM_UP)

    def send(self, stamp, edit=None, left=LEFT, right=RIGHT, **kw):
        msgs = self.harness.messages(stamp, left, right, **kw)
        if edit is not None:
            edit(msgs)
        self.harness.send(msgs)

    def outputs(self, stamp, timeout=60.0):
        got = self.harness.got
        assert self.graph.wait_until(lambda: all(got[k].get(stamp) is not None for k in got), timeout), \
            f"no outputs for {stamp}:\n{self.node.output}"
        return [got[k][stamp] for k in ("disparity", "depth", "points2")]

    def served(self, stamp, **kw):
        self.send(stamp, **kw)
        d = conv.disparity_from_msg(self.outputs(stamp)[0])
        assert np.nanmedian(d) == pytest.approx(10.0, abs=0.2)

    def none_for(self, stamp):
        self.graph.wait_until(lambda: False, 0.5)
        assert all(self.harness.got[k].get(stamp) is None for k in self.harness.got), stamp

    def refused(self, stamp, cause, text, **kw):
        """Refused: counted under ``cause`` in /diagnostics, one log line naming ``text``, no output."""
        before = max(self.node.counter(cause), 0)
        mark = self.node.mark()
        self.send(stamp, **kw)
        self.node.wait_counter(self.graph, cause, before + 1)
        line = self.node.wait_for_line(rf"\[{cause}: \d+ so far\]; frame skipped", start=mark)
        assert text in line, line
        self.none_for(stamp)
        return line


@pytest.fixture(scope="module")
def fed(graph):
    """One depth node process for the fx and stamp cases (counters compared before/after)."""
    fed = Fed(graph, "warn_cases", SGBM)
    with fed.node:
        yield fed
        assert fed.node.stop() == 0
    assert_no_traceback(fed.node.output)


def _counters(fed, *names):
    return tuple(fed.node.counter(n) for n in names)


def test_left_and_right_focal_lengths_that_differ_are_named_and_the_factor_given(graph, fed):
    fed.served(1_000_000_000)
    fed.node.wait_counter(graph, "processed", 2)
    before = max(fed.node.counter("fx_mismatch"), 0)

    def right_fx_doubled(m):   # the probe's case: left fx 100, right fx 200
        p = list(m["right/camera_info"].p)
        p[0], p[3] = 2 * p[0], 2 * p[3]   # the same baseline: P[3] = -fx * B
        m["right/camera_info"].p = p

    mark = fed.node.mark()
    fed.send(1_100_000_000, edit=right_fx_doubled)
    disparity, depth, _ = fed.outputs(1_100_000_000)   # processed anyway
    line = fed.node.wait_for_line(r"\[fx_mismatch: \d+ so far\]", start=mark)
    assert "[WARN]" in line and "left fx 100 differs from right fx 200" in line
    assert "depth from the disparity message would be 2 x the depth image" in line
    d, z = conv.disparity_from_msg(disparity), conv.image_32f(depth)
    ok = np.isfinite(d) & np.isfinite(z)
    # what the warning says: the depth image is left fx * T / d, DisparityImage.f * T / d is twice it
    assert disparity.f == pytest.approx(200.0)
    assert np.median(z[ok]) == pytest.approx(GEOM.fx * GEOM.baseline / np.median(d[ok]), rel=0.01)
    fed.node.wait_counter(graph, "fx_mismatch", before + 1)
    processed = fed.node.counter("processed")
    fed.served(1_200_000_000)   # the next, consistent pair: no new warning
    fed.node.wait_counter(graph, "processed", processed + 1)
    assert fed.node.counter("fx_mismatch") == before + 1


def test_sets_stamped_zero_or_far_in_the_future_are_refused_by_name(graph, fed):
    names = ("time_reset", "out_of_order", "zero_stamp", "future_stamp")
    fed.node.wait_counter(graph, "processed", 1)
    before = _counters(fed, *names)
    now = time.time_ns()
    fed.served(now)
    fed.refused(0, "zero_stamp", "stereo set stamped 0: the driver does not stamp its messages")
    ahead = now + 3600 * 10**9
    line = fed.refused(ahead, "future_stamp", "ahead of this node's clock (tolerance 10 s)")
    lead = float(re.search(r"is ([\d.]+) s ahead", line).group(1))
    assert 3500 < lead <= 3600, line   # an hour, less the time it took to get there
    processed = fed.node.counter("processed")
    fed.served(now + 100_000_000)   # the next good set: ordering undisturbed, nothing reset
    fed.node.wait_counter(graph, "processed", processed + 1)
    b = before
    assert _counters(fed, *names) == (b[0], b[1], b[2] + 1, b[3] + 1)


def test_a_frame_arriving_late_is_not_a_stall_but_a_stopped_camera_is(graph):
    # a slow source (a set every 2 s) whose images arrive 1 s after their camera_info: twice the
    # stall_timeout late. (mono8 640x384: one SHM segment; larger images over best-effort UDP
    # are lost now and then on a loaded machine, and over reliable UDP delayed by seconds.)
    h, w = 384, 640
    geometry = GEOM.scaled(4.0)
    left, right = plane_pair(h, w, 12, seed=3)
    fed = Fed(graph, "warn_stall", {**SGBM, "stall_timeout": 0.5, "diagnostics_period": 0.1})
    pubs = fed.harness.pubs
    with fed.node:
        stamp = 1_000_000_000
        for _ in range(3):
            stamp += 2_000_000_000
            msgs = fed.harness.messages(stamp, left, right, geometry=geometry, encoding="mono8")
            pubs["left/camera_info"].publish(msgs["left/camera_info"])
            pubs["right/camera_info"].publish(msgs["right/camera_info"])
            time.sleep(1.0)   # before, the images were "silent" from 0.5 s after the previous set
            pubs["left/image_rect"].publish(msgs["left/image_rect"])
            pubs["right/image_rect"].publish(msgs["right/image_rect"])
            fed.outputs(stamp)
            time.sleep(1.0)
        fed.node.wait_counter(graph, "processed", 4)
        assert fed.node.counter("input_stall") == 0, fed.node.output
        assert not [s.message for s in fed.node.statuses if "silent" in s.message]
        assert "silent for" not in fed.node.output
        # the right camera stops for 2 s while the left one goes on: that is a stall
        mark = fed.node.mark()
        for _ in range(14):
            stamp += 150_000_000
            msgs = fed.harness.messages(stamp, left, right, geometry=geometry, encoding="mono8")
            pubs["left/camera_info"].publish(msgs["left/camera_info"])
            pubs["left/image_rect"].publish(msgs["left/image_rect"])
            time.sleep(0.15)
        line = fed.node.wait_for_line(r"\[input_stall: 1 so far\]", start=mark)
        assert "right/image_rect, right/camera_info silent for more than 0.5 s" in line
        fed.node.wait_counter(graph, "input_stall", 1)
        assert any("input stalled" in s.message and "right/image_rect silent for" in s.message
                   for s in fed.node.statuses)
        stamp += 150_000_000
        fed.send(stamp, left=left, right=right, geometry=geometry, encoding="mono8")   # it resumes
        fed.outputs(stamp)
        fed.node.wait_for_line(r"resumed: pairing again", start=mark)
        assert fed.node.stop() == 0
    assert_no_traceback(fed.node.output)


def test_sync_monitor_stall_rules():
    from stereo_depth_ros.ros.sync_monitor import SyncMonitor

    S = 10**9   # stamps in seconds

    def pause():
        time.sleep(0.08)

    mon = SyncMonitor(["info", "image"], window=5)
    for t in (10, 20):   # complete sets
        mon.seen(0, t * S)
        mon.seen(1, t * S)
    pause()
    mon.seen(0, 30 * S)   # the next set's info; its image is late: one set behind, not silent
    assert mon.silent_inputs(0.05) == {}
    pause()
    mon.seen(0, 40 * S)   # the info goes on: two sets ahead of a quiet image is a stall
    assert list(mon.silent_inputs(0.05)) == ["image"]
    mon.seen(1, 30 * S)   # late frames arrive, one still behind
    assert mon.silent_inputs(0.05) == {}
    # a bag loop: time goes back on one input; the other is behind the new time until it speaks
    mon.seen(0, 5 * S)
    mon.seen(0, 6 * S)
    pause()
    mon.seen(0, 7 * S)
    assert list(mon.silent_inputs(0.05)) == ["image"]
    mon.seen(1, 7 * S)
    assert mon.silent_inputs(0.05) == {}
    # an input never heard from is silent since start once the other has gone on
    mon = SyncMonitor(["left", "right"], window=5)
    mon.seen(0, 1 * S)
    mon.seen(0, 2 * S)
    pause()
    mon.seen(0, 3 * S)
    assert mon.silent_inputs(0.05) == {"right": None}
