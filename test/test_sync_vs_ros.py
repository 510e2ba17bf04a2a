"""The package's synchronizers next to the real ROS 2 Python message_filters (6.0.6), on the
same stamp streams. Where they differ, docs/sync.md says which is right and why; the cases
below pin each difference down. Skipped where ../shared (the reference wheels) is absent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from ros_reference import loaded
from sync_reference import MS, SEC, Stream, stereo_streams, streams
from test_sync_policies import run_package

VS_ROS = settings(max_examples=300, deadline=None, database=None)


@pytest.fixture(scope="module")
def ros():
    with loaded() as modules:
        yield modules


class RosMsg:
    """What the real synchronizers need: header.stamp as a builtin_interfaces Time."""
    __slots__ = ("header", "id")

    def __init__(self, ident: int, ns: int) -> None:
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        self.header = Header(stamp=Time(sec=ns // SEC, nanosec=ns % SEC))
        self.id = ident


def run_ros(ros, stream: Stream, approximate: bool, queue_size: int | None = None):
    mf = ros.message_filters
    sources = [mf.SimpleFilter() for _ in range(stream.n)]
    qs = queue_size or stream.queue_size
    sync = (mf.ApproximateTimeSynchronizer(sources, qs, stream.slop / SEC) if approximate
            else mf.TimeSynchronizer(sources, qs))
    out: list[tuple[int, ...]] = []
    sync.registerCallback(lambda *msgs: out.append(tuple(m.id for m in msgs)))
    for ident, (k, ns) in enumerate(stream.arrivals):
        sources[k].signalMessage(RosMsg(ident, ns))
    return out


def non_negative(stream: Stream) -> bool:
    return all(ns >= 0 for _, ns in stream.arrivals)


@VS_ROS
@given(streams(in_order_only=True))
def test_exact_same_sets_as_ros_on_ordered_inputs(ros, stream):
    if not non_negative(stream):
        return
    assert run_package(stream, approximate=False)[0] == run_ros(ros, stream, approximate=False)


@VS_ROS
@given(stereo_streams())
def test_approximate_same_sets_as_ros_when_pairing_is_unambiguous(ros, stream):
    """Frames further apart than twice slop, each within slop on every input: both pair each
    complete frame; the package sends a skewed set when a later message proves it (the last
    one at the end of the time line), ROS's Python one at once."""
    out, sync = run_package(stream, approximate=True)
    with sync.lock:
        out += [tuple(m.id for m in s) for s in sync._policy.flush()]
    assert out == run_ros(ros, stream, approximate=True)


def _stream(n, slop_ms, queue_size, arrivals):
    return Stream(n, queue_size, slop_ms * MS, arrivals, 1, False)


def test_ros_python_approximate_sets_can_go_back_in_time(ros):
    """ROS's Python ApproximateTimeSynchronizer takes, for each new message, the first
    combination within slop (nearest first): here the right camera's 597 ms frame goes with the
    left 625 ms one, then its 592 ms frame with the left 630 ms: the second set is older on the
    right. The wiki's policy (sets never cross) pairs right 597 with left 625 and waits."""
    right, left = 1, 0
    stream = _stream(2, 50, 2, [(right, 592 * MS), (right, 597 * MS), (left, 625 * MS), (left, 630 * MS)])
    assert run_ros(ros, stream, approximate=True) == [(2, 1), (3, 0)]
    out, sync = run_package(stream, approximate=True)
    with sync.lock:
        out += [tuple(m.id for m in s) for s in sync._policy.flush()]
    assert out == [(2, 1)]


@pytest.mark.parametrize("approximate", [False, True])
def test_ros_python_synchronizers_stall_after_a_bag_loop(ros, approximate):
    """A bag whose right topic ends 6 frames before its left one, played in a loop: ROS's
    Python synchronizers keep the 5 unpaired left messages of the first play (queue_size 5);
    every left message of the next plays is older, so it is the one evicted at once: no set
    after the first play, for ever. The package starts a new time line at the jump back."""
    left, right = 0, 1
    skew = 25 * MS if approximate else 0
    play = []
    for f in range(20):
        t = 1_600_000_000 * SEC + f * 200 * MS
        play.append((left, t))
        if f < 14:
            play.append((right, t + skew))
    stream = _stream(2, 50, 5, play * 3)
    per_play = len(play)
    ros_sets = run_ros(ros, stream, approximate)
    pkg_sets = run_package(stream, approximate)[0]
    assert {s[0] // per_play for s in ros_sets} == {0}
    assert {s[0] // per_play for s in pkg_sets} == {0, 1, 2}
    assert len(pkg_sets) >= 3 * 13


def test_ros_python_raises_on_a_negative_stamp(ros):
    """rclpy's Time refuses negative seconds, so ROS's Python synchronizers raise into the
    executor for a stamp before 1970 (a driver subtracting its exposure time from a simulated
    clock that starts at 0); the package pairs such stamps like any other."""
    stream = _stream(2, 10, 5, [(0, -5 * MS), (1, -5 * MS)])
    with pytest.raises(ValueError, match="negative"):
        run_ros(ros, stream, approximate=False)
    assert run_package(stream, approximate=False)[0] == [(0, 1)]


def test_slop_bound_is_inclusive(ros):
    """A set spanning exactly slop: the C++ policy's MaxIntervalDuration (and the package)
    accepts it, ROS's Python one requires strictly less than slop."""
    stream = _stream(2, 10, 5, [(0, SEC), (1, SEC + 10 * MS), (0, 2 * SEC), (1, 3 * SEC)])
    assert run_ros(ros, stream, approximate=True) == []
    assert run_package(stream, approximate=True)[0] == [(0, 1)]


def compare(ros, n: int) -> dict[str, int]:
    """Counts over ``n`` generated streams (deterministic): the figures of docs/sync.md."""
    import itertools
    from collections import Counter

    from hypothesis import HealthCheck

    stats: Counter[str] = Counter()

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(streams())
    def one(stream):
        stamps = [ns for _, ns in stream.arrivals]
        kind = "ordered" if stream.in_order else "messy"
        stats[f"streams {kind}"] += 1
        for approximate in (False, True):
            policy = "approximate" if approximate else "exact"
            key = f"{policy} {kind}"
            out, sync = run_package(stream, approximate)
            with sync.lock:
                out += [tuple(m.id for m in s) for s in sync._policy.flush()]
            try:
                theirs = run_ros(ros, stream, approximate)
            except ValueError:
                stats[f"{key}: ROS raised (negative stamp)"] += 1
                continue
            stats[f"{key}: same sets"] += out == theirs
            stats[f"{key}: sets package"] += len(out)
            stats[f"{key}: sets ROS"] += len(theirs)
            back = sum(not all(stamps[j] > stamps[i] for i, j in zip(a, b, strict=True))
                       for a, b in itertools.pairwise(theirs))
            stats[f"{key}: ROS sets not after the previous one"] += back
            for who, sets in (("package", out), ("ROS", theirs)):
                stats[f"{key}: spread sum us {who}"] += sum(
                    (max(stamps[i] for i in s) - min(stamps[i] for i in s)) // 1000 for s in sets)
            if stream.loops > 1:
                play = len(stream.arrivals) // stream.loops
                last_pkg = sum(1 for s in out if min(s) >= play * (stream.loops - 1))
                last_ros = sum(1 for s in theirs if min(s) >= play * (stream.loops - 1))
                stats[f"{key}: looped streams"] += 1
                stats[f"{key}: looped, ROS no set in the last play, package some"] += last_ros == 0 < last_pkg

    one()
    return dict(sorted(stats.items()))


if __name__ == "__main__":
    import json
    import sys

    with loaded() as modules:
        print(json.dumps(compare(modules, int(sys.argv[1]) if len(sys.argv) > 1 else 2000), indent=1))
