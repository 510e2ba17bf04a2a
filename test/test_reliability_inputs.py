"""Bad inputs to the depth node over real rclpy/DDS: every one is counted by cause, named in
a throttled log line and in /diagnostics, produces no output for its stamp, and the node
serves the next good frame. (Unsupported encoding, left/right size mismatch, empty image and
zero baseline are in test_depth_node.py.)"""

import array
import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from stereo_scenes import plane_pair
from test_depth_node import BRIDGE, SGBM, H, Harness, W

from stereo_depth_ros.geometry import StereoGeometry
from stereo_depth_ros.ros import conversions as conv
from stereo_depth_ros.ros.depth_node import DepthNode
from stereo_depth_ros.ros.graph import NodeGraph

pytestmark = pytest.mark.ros

LEFT, RIGHT = plane_pair(H, W, 12, seed=5)   # published disparity 10 px


@pytest.fixture(scope="module")
def graph():
    with NodeGraph() as g:
        yield g


class Rig:
    """A depth node in its own namespace, its harness, the diagnostics and log lines it emits."""

    def __init__(self, graph, ns, params=()):
        self.graph = graph
        self.node = graph.add(DepthNode(namespace=ns, context=graph.context,
                                        parameter_overrides=SGBM + list(params)))
        self.logs = []
        emit = self.node._emit
        self.node._emit = lambda level, text: (self.logs.append((level, text)), emit(level, text))
        self.harness = graph.add(Harness(ns, graph.context))
        self.diagnostics = []
        name = self.node.get_fully_qualified_name()
        self.harness.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.diagnostics.extend(s for s in m.status if s.name.startswith(name + ":")), 10)
        pubs = self.harness.pubs.values()
        assert graph.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                                and self.node.pub_disparity.get_subscription_count() > 0, timeout=10)

    def send(self, stamp, left=LEFT, right=RIGHT, edit=None, **kw):
        msgs = self.harness.messages(stamp, left, right, **kw)
        if edit is not None:
            edit(msgs)
        self.harness.send(msgs)
        return msgs

    def refused(self, stamp, cause, text, **kw):
        """Send a bad set: counted under ``cause``, message has ``text``, nothing published."""
        before = self.node.counters[cause]
        self.send(stamp, **kw)
        assert self.graph.wait_until(lambda: self.node.counters[cause] > before, timeout=10), cause
        assert text in self.node.last_error, self.node.last_error
        assert any(f"[{cause}: " in t for _, t in self.logs), self.logs   # logged, throttled per cause
        return stamp

    def served(self, stamp, **kw):
        """A good set after the bad ones is processed and published (disparity 10 px)."""
        self.send(stamp, **kw)
        assert self.graph.wait_until(lambda: self.harness.got["disparity"].get(stamp) is not None, 10)
        d = conv.disparity_from_msg(self.harness.got["disparity"][stamp])
        assert np.nanmedian(d) == pytest.approx(10.0, abs=0.2)

    def nothing_for(self, *stamps):
        self.graph.wait_until(lambda: False, timeout=0.3)   # let any stray output arrive
        for s in stamps:
            assert all(self.harness.got[k].get(s) is None for k in ("disparity", "depth", "points2")), s

    def diagnostic(self, predicate, timeout=5.0):
        assert self.graph.wait_until(lambda: any(predicate(s) for s in self.diagnostics), timeout), \
            [s.message for s in self.diagnostics[-3:]]
        status = next(s for s in reversed(self.diagnostics) if predicate(s))
        return status, {kv.key: kv.value for kv in status.values}


def test_image_smaller_than_the_backends_minimum(graph):
    rig = Rig(graph, "small")
    small = StereoGeometry(fx=20.0, fy=20.0, cx=15.5, cy=11.5, cx_right=15.5, baseline=0.1,
                           width=32, height=24)
    # disparity_range 32 + window 7: the valid window needs 39 columns
    rig.refused(1_000_000_000, "image_too_small", "32x24 but backend sgbm needs at least 39x8",
                left=LEFT[:24, :32], right=RIGHT[:24, :32], geometry=small)
    rig.served(1_100_000_000)
    rig.nothing_for(1_000_000_000)
    rig.diagnostic(lambda s: {(kv.key, kv.value) for kv in s.values}
                   >= {("image_too_small", "1"), ("processed", "1")})


def test_huge_images_are_refused_before_decoding(graph):
    rig = Rig(graph, "huge")
    # through DDS: the limit lowered at run time below this 160x96 image
    assert rig.node.set_parameters([Parameter("max_image_pixels", value=H * W - 1)])[0].successful
    rig.refused(2_000_000_000, "image_too_large", f"160x96 = {H * W} pixels, more than max_image_pixels")
    assert rig.node.set_parameters([Parameter("max_image_pixels", value=16_777_216)])[0].successful
    rig.served(2_100_000_000)
    rig.nothing_for(2_000_000_000)
    # a real 8K (7680 x 4320) pair with the default limit, handed straight to the node
    msgs = rig.harness.messages(2_200_000_000, LEFT, RIGHT)
    for side in ("left/image_rect", "right/image_rect"):
        big = Image(header=msgs[side].header, width=7680, height=4320, encoding="mono8", step=7680)
        big.data = array.array("B", bytes(7680 * 4320))
        msgs[side] = big
    before = rig.node.counters["image_too_large"]
    assert not rig.node.process_pair(msgs["left/image_rect"], msgs["left/camera_info"],
                                     msgs["right/image_rect"], msgs["right/camera_info"])
    assert rig.node.counters["image_too_large"] == before + 1
    assert "7680x4320 = 33177600 pixels" in rig.node.last_error
    rig.served(2_300_000_000)


def test_step_and_data_length_inconsistent_with_width(graph):
    rig = Rig(graph, "layout")

    def short_step(m):
        m["left/image_rect"].step = W * 3 - 1

    def truncated(m):
        m["right/image_rect"].data = m["right/image_rect"].data[: W * 3 * (H - 1)]

    rig.refused(3_000_000_000, "bad_layout", f"step {W * 3 - 1} is smaller than width x pixel size",
                edit=short_step)
    rig.refused(3_100_000_000, "bad_layout", f"right image data holds {W * 3 * (H - 1)} bytes",
                edit=truncated)
    rig.served(3_200_000_000)
    rig.nothing_for(3_000_000_000, 3_100_000_000)


@pytest.mark.parametrize("what,edit,text", [
    ("zero focal length", lambda m: m["left/camera_info"].p.__setitem__(0, 0.0), "P[0] = 0.0"),
    ("NaN focal length", lambda m: m["right/camera_info"].p.__setitem__(0, math.nan),
     "right camera_info has no projection matrix P (P[0] = nan)"),
    ("NaN baseline", lambda m: m["right/camera_info"].p.__setitem__(3, math.nan), "baseline is nan"),
    ("NaN fy", lambda m: m["left/camera_info"].p.__setitem__(5, math.nan), "fy is nan"),
])
def test_unusable_camera_info(graph, what, edit, text):
    rig = Rig(graph, "info_" + what.replace(" ", "_").lower())
    rig.refused(4_000_000_000, "bad_camera_info", text, edit=edit)
    rig.served(4_100_000_000)
    rig.nothing_for(4_000_000_000)


def test_camera_info_for_another_image_size(graph):
    rig = Rig(graph, "info_size")

    def other_size(m):
        m["right/camera_info"].width, m["right/camera_info"].height = 320, 192

    rig.refused(5_000_000_000, "bad_camera_info",
                "right camera_info is for 320x192 images but the image is 160x96", edit=other_size)
    rig.served(5_100_000_000)
    rig.nothing_for(5_000_000_000)


def test_float_images_with_nan_and_inf_are_refused_clearly_and_logs_are_throttled(graph):
    rig = Rig(graph, "float")
    pixels = LEFT.mean(axis=2).astype(np.float32) / 255.0
    pixels[10, 10], pixels[20, 20], pixels[30, 30] = np.nan, np.inf, -np.inf

    def floats(m):
        for side in ("left/image_rect", "right/image_rect"):
            m[side] = BRIDGE.cv2_to_imgmsg(pixels, "32FC1", m[side].header)

    for k in range(3):   # three in a row: three counts, one log line (throttled per cause)
        rig.refused(6_000_000_000 + k, "bad_encoding", "unsupported encoding '32FC1' (float images",
                    edit=floats)
    assert rig.node.counters["bad_encoding"] == 3
    assert sum("32FC1" in t for _, t in rig.logs) == 1
    assert "[bad_encoding: 1 so far]; frame skipped" in next(t for _, t in rig.logs if "32FC1" in t)
    rig.served(6_100_000_000)
    rig.nothing_for(6_000_000_000, 6_000_000_001, 6_000_000_002)
    status, values = rig.diagnostic(lambda s: {(kv.key, kv.value) for kv in s.values}
                                    >= {("bad_encoding", "3"), ("processed", "1")})
    assert status.level == DiagnosticStatus.WARN and values["processed"] == "1"


def test_duplicated_and_out_of_order_stamps(graph):
    rig = Rig(graph, "stamps")
    t = 7_000_000_000
    rig.served(t)
    first = rig.harness.got["disparity"][t]
    other_left, other_right = plane_pair(H, W, 20, seed=9)
    rig.refused(t, "duplicate_stamp", "repeats the last accepted one", left=other_left, right=other_right)
    rig.refused(t - 100_000_000, "out_of_order", "100.0 ms older than the last accepted one")
    rig.nothing_for(t - 100_000_000)
    assert rig.harness.got["disparity"][t] is first and rig.node.counters["processed"] == 1
    rig.served(t + 100_000_000)
    # a jump back of more than a second is a restarted clock (bag loop): accepted and reported
    rig.served(1_000_000_000)
    assert rig.node.counters["time_reset"] == 1 and "time went back" in rig.logs[-1][1]
    rig.served(1_100_000_000)
    _, values = rig.diagnostic(lambda s: any(kv.key == "processed" and kv.value == "4" for kv in s.values))
    assert (values["duplicate_stamp"], values["out_of_order"], values["time_reset"]) == ("1", "1", "1")


def test_image_and_camera_info_from_different_frames(graph):
    rig = Rig(graph, "frames")

    def wrong_frame(m):
        m["left/image_rect"].header.frame_id = "some_other_camera"

    stamp = 8_000_000_000   # default: warned, counted, still processed
    rig.send(stamp, edit=wrong_frame)
    assert graph.wait_until(lambda: rig.harness.got["disparity"].get(stamp) is not None, 10)
    assert rig.node.counters["frame_mismatch"] == 1
    assert "left image frame_id 'some_other_camera' differs from left camera_info frame_id" in rig.logs[-1][1]
    assert rig.logs[-1][0] == "warn"
    assert rig.node.set_parameters([Parameter("reject_frame_mismatch", value=True)])[0].successful
    rig.refused(8_100_000_000, "frame_mismatch", "'some_other_camera' differs", edit=wrong_frame)
    rig.nothing_for(8_100_000_000)
    rig.served(8_200_000_000)
    assert rig.node.counters["frame_mismatch"] == 2


def test_only_one_camera_publishing_is_reported_as_a_stall(graph):
    rig = Rig(graph, "one_camera", [Parameter("stall_timeout", value=0.4)])

    def one_silent(status):
        return any(kv.key == "silent_inputs" and kv.value for kv in status.values)

    # Only the left camera publishes, and it goes on until a /diagnostics tick has seen the stall:
    # a stall is reported only while another input still arrives (a whole source that stops is
    # not one), so a fixed burst could end before the next tick on a loaded machine.
    stamp = 9_000_000_000
    for k in range(60):
        msgs = rig.harness.messages(stamp, LEFT, RIGHT)
        rig.harness.pubs["left/image_rect"].publish(msgs["left/image_rect"])
        rig.harness.pubs["left/camera_info"].publish(msgs["left/camera_info"])
        stamp += 100_000_000
        graph.wait_until(lambda: False, timeout=0.1)
        if k >= 7 and any(one_silent(s) for s in rig.diagnostics):
            break
    status, values = rig.diagnostic(one_silent)
    assert status.level == DiagnosticStatus.WARN
    assert "right/image_rect silent since start" in status.message
    assert "right/camera_info" in values["silent_inputs"] and "left" not in values["silent_inputs"]
    assert values["input_stall"] == "1" and values["processed"] == "0"
    assert any("right/image_rect, right/camera_info silent for more than 0.4 s" in t for _, t in rig.logs)
    rig.served(stamp + 100_000_000)   # the right camera appears: pairing starts


def test_stamp_guard_rules():
    from stereo_depth_ros.ros.input_checks import StampGuard

    g = StampGuard(reset_after_s=1.0, reset_count=3)
    assert [g.check(t) for t in (10, 20, 20, 15)] == ["ok", "ok", "duplicate", "out_of_order"]
    # a frozen driver repeating one stamp is never taken for a clock restart
    assert {g.check(20) for _ in range(10)} == {"duplicate"}
    # a short bag looping (small jump back): refused until it happens reset_count times in a row
    assert [g.check(t) for t in (5, 6)] == ["out_of_order", "reset"]
    assert g.check(7) == "ok"
    # a long jump back (> 1 s) is a restart at once
    assert g.check(7 - 2_000_000_000) == "reset"


def test_minimum_size_follows_the_matcher_settings():
    from stereo_depth_ros.backends.sgbm import SgbmBackend
    from stereo_depth_ros.ros.input_checks import minimum_size

    for rng, win in ((32, 7), (64, 15), (128, 5)):
        min_w, min_h = minimum_size(SgbmBackend(disparity_range=rng, correlation_window_size=win))
        ok = np.zeros((min_h, min_w, 3), np.uint8)
        SgbmBackend(disparity_range=rng, correlation_window_size=win).compute(ok, ok)   # runs
        too_narrow = np.zeros((min_h, min_w - 1, 3), np.uint8)
        with pytest.raises(Exception, match="too small"):
            SgbmBackend(disparity_range=rng, correlation_window_size=win).compute(too_narrow, too_narrow)
