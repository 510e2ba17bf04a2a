"""The package's synchronizers against reference models of message_filters' policies
(test/sync_reference.py), over thousands of generated stamp streams (hypothesis)."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_reference import (
    MS,
    SEC,
    ReferenceSync,
    Stream,
    offline_approximate,
    streams,
)

from stereo_depth_ros.ros import _message_filters as mf

# CI: 750 streams per property; SYNC_HYPOTHESIS_PROFILE=thorough: 5,000
PROFILE = os.environ.get("SYNC_HYPOTHESIS_PROFILE", "ci")
STREAMS = settings(max_examples={"ci": 750, "thorough": 5000}[PROFILE], deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Stamp:
    __slots__ = ("sec", "nanosec")

    def __init__(self, ns: int) -> None:
        self.sec, self.nanosec = divmod(ns, SEC)


class Header:
    __slots__ = ("stamp",)

    def __init__(self, ns: int) -> None:
        self.stamp = Stamp(ns)


class Msg:
    """A stamped message; ``id`` is its place in the arrival order (duplicates differ)."""
    __slots__ = ("header", "id", "input", "ns")

    def __init__(self, ident: int, k: int, ns: int) -> None:
        self.header, self.id, self.input, self.ns = Header(ns), ident, k, ns


class Source(mf.SimpleFilter):
    def push(self, msg):
        self.signalMessage(msg)


def run_package(stream: Stream, approximate: bool, queue_size: int | None = None):
    sources = [Source() for _ in range(stream.n)]
    qs = queue_size or stream.queue_size
    sync = (mf.ApproximateTimeSynchronizer(sources, qs, stream.slop / SEC) if approximate
            else mf.TimeSynchronizer(sources, qs))
    out: list[tuple[int, ...]] = []
    sync.registerCallback(lambda *msgs: out.append(tuple(m.id for m in msgs)))
    for ident, (k, ns) in enumerate(stream.arrivals):
        sources[k].push(Msg(ident, k, ns))
    return out, sync


def run_reference(stream: Stream, approximate: bool, queue_size: int | None = None):
    ref = ReferenceSync(stream.n, queue_size or stream.queue_size, stream.slop if approximate else None)
    for ident, (k, ns) in enumerate(stream.arrivals):
        ref.add(k, ns, ident)
    return [tuple(s) for s in ref.emitted], ref.epoch_of_set


def check_invariants(stream: Stream, out: list[tuple[int, ...]], epochs: list[int], approximate: bool):
    stamps = [ns for _, ns in stream.arrivals]
    inputs = [k for k, _ in stream.arrivals]
    used = [i for s in out for i in s]
    assert len(used) == len(set(used)), "a message was emitted twice"
    for s in out:
        assert [inputs[i] for i in s] == list(range(stream.n)), "one message per input, in input order"
        spread = max(stamps[i] for i in s) - min(stamps[i] for i in s)
        assert spread <= (stream.slop if approximate else 0)
    for a, b, ea, eb in zip(out, out[1:], epochs, epochs[1:], strict=False):
        if ea == eb:  # within a time line every input moves forward: no repeat, no going back
            assert all(stamps[j] > stamps[i] for i, j in zip(a, b, strict=True)), "sets out of order"


@pytest.mark.parametrize("approximate", [True, False], ids=["approximate", "exact"])
@STREAMS
@given(streams())
def test_the_package_emits_what_the_reference_emits(approximate, stream):
    out, sync = run_package(stream, approximate=approximate)
    ref, epochs = run_reference(stream, approximate=approximate)
    assert sync.errors == 0
    assert out == ref
    check_invariants(stream, out, epochs, approximate=approximate)


@STREAMS
@given(streams(in_order_only=True))
def test_approximate_is_the_documented_policy(stream):
    """Inputs in order and queues long enough: the sets are those the wiki's definition forms
    from the complete streams, whatever the interleaving of the inputs (its property 6); the
    last one may still wait for proof when the streams end."""
    big = len(stream.arrivals) + 1
    out, sync = run_package(stream, approximate=True, queue_size=big)
    per_input = stream.per_input()
    index = {}  # arrival id -> (input, position in its stream)
    counters = [0] * stream.n
    for ident, (k, _) in enumerate(stream.arrivals):
        index[ident] = counters[k]
        counters[k] += 1
    got = [tuple(index[i] for i in s) for s in out]
    want = offline_approximate(per_input, stream.slop)
    assert got == want[:len(got)] and len(want) - len(got) <= 1
    with sync.lock:  # the end of the time line makes the waiting set final
        rest = [tuple(index[m.id] for m in s) for s in sync._policy.flush()]
    assert got + rest == want


def _loop(recording: Stream, loops: int) -> Stream:
    """The recording played ``loops`` times: the stamps repeat exactly, as a looped bag's do."""
    return Stream(recording.n, recording.queue_size, recording.slop, recording.arrivals * loops, loops, False)


@STREAMS
@given(streams(in_order_only=True), st.integers(2, 4), st.booleans())
def test_sync_resumes_after_every_bag_loop(recording, loops, approximate):
    """A recording played in a loop (time jumps back at each start): every loop gives the sets
    a fresh synchronizer gives for one play, the last one included (the jump ends the time
    line, so a set waiting for proof is emitted) when the recording is longer than 1 s;
    shorter loops lose at most the first two messages of each input per loop."""
    stamps = [ns for _, ns in recording.arrivals]
    if not stamps:
        return
    looped = _loop(recording, loops)
    out, sync = run_package(looped, approximate)
    assert sync.errors == 0
    once, once_sync = run_package(recording, approximate)
    with once_sync.lock:
        once_tail = len(once_sync._policy.flush())
    per_play = len(once) + once_tail
    long_enough = all(len(s) > 1 and max(s) - min(s) > SEC for s in recording.per_input())
    plays = len(recording.arrivals)
    counts = [0] * loops
    for s in out:
        counts[s[0] // plays] += 1
    if long_enough:
        assert counts[:-1] == [per_play] * (loops - 1)   # each finished play, flushed by the next jump
        assert counts[-1] == len(once)                   # the last play's final set still waits
    elif per_play >= 3 + 2 * recording.n:
        assert min(counts[1:]) >= 1, f"sync did not resume after a loop: {counts}"
    assert set(itertools.chain.from_iterable(out)) <= set(range(len(looped.arrivals)))


# ---- the cases of the field report, and the edges, one by one ----

def _msg(ns, k=0, ident=0):
    return Msg(ident, k, ns)


def test_bag_loop_with_a_full_queue_does_not_raise_and_resumes():
    """Issue 12: AirSim-like skew (+25 ms right), right camera dropping frames so the left
    queue fills; the bag loops: the first left message of the new play is older than all of
    the queue. It used to be evicted at once and then popped: KeyError in the executor."""
    sources = [Source(), Source()]
    sync = mf.ApproximateTimeSynchronizer(sources, 3, 0.05)
    out = []
    sync.registerCallback(lambda left, right: out.append((left.ns, right.ns)))
    base = 1_600_000_000 * SEC
    for _play in range(3):
        for f in range(20):
            t = base + f * 200 * MS
            sources[0].push(_msg(t))
            if f % 4 != 3 and f < 15:   # the right camera drops frames and stops early
                sources[1].push(_msg(t + 25 * MS, 1))
    assert sync.errors == 0
    assert len(out) >= 3 * 10
    assert all(r - left == 25 * MS for left, r in out)
    assert sync.epochs == 2


def test_exact_after_clock_reset_and_duplicates():
    sources = [Source(), Source()]
    sync = mf.TimeSynchronizer(sources, 4)
    out = []
    sync.registerCallback(lambda a, b: out.append((a.ns, b.ns)))
    for t in (10 * SEC, 11 * SEC, 11 * SEC):      # a frozen driver repeats its stamp
        sources[0].push(_msg(t))
        sources[1].push(_msg(t, 1))
    for t in (SEC, 2 * SEC):                      # /clock reset: time starts again at 1 s
        sources[0].push(_msg(t))
        sources[1].push(_msg(t, 1))
    assert out == [(10 * SEC, 10 * SEC), (11 * SEC, 11 * SEC), (SEC, SEC), (2 * SEC, 2 * SEC)]
    assert sync.drops["duplicate"] == 2 and sync.epochs == 1


def test_a_raising_callback_is_logged_and_counted_not_raised():
    sources = [Source(), Source()]
    sync = mf.ApproximateTimeSynchronizer(sources, 5, 0.01)
    got = []

    def bad(a, b):
        raise RuntimeError("downstream bug")

    sync.registerCallback(bad)
    sync.registerCallback(lambda a, b: got.append(a.ns))
    for t in (SEC, 2 * SEC):
        sources[0].push(_msg(t))
        sources[1].push(_msg(t, 1))
    assert got == [SEC, 2 * SEC] and sync.errors == 2


def test_headerless_messages():
    class Bare:
        pass

    sources = [Source(), Source()]
    exact = mf.TimeSynchronizer(sources, 5)
    sources[0].push(Bare())
    assert exact.drops["no_stamp"] == 1 and exact.errors == 0
    srcs = [Source(), Source()]
    approx = mf.ApproximateTimeSynchronizer(srcs, 5, 0.5, allow_headerless=True)
    got = []
    approx.registerCallback(lambda a, b: got.append((a, b)))
    a, b, a2 = Bare(), Bare(), Bare()
    srcs[0].push(a)
    srcs[1].push(b)   # stamped with the ROS clock on receipt, well within 0.5 s
    srcs[0].push(a2)  # the next left one proves the set (it may even be closer to b)
    srcs[1].push(Bare())
    assert got and got[0][1] is b and got[0][0] in (a, a2) and approx.errors == 0


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_slop_refused(bad):
    with pytest.raises(ValueError):
        mf.ApproximateTimeSynchronizer([Source(), Source()], 5, bad)
    with pytest.raises(ValueError):
        mf.TimeSynchronizer([Source(), Source()], 0)


def test_refused_messages_are_reported():
    sources = [Source(), Source()]
    sync = mf.TimeSynchronizer(sources, 5)
    refused = []
    sync.registerRefusalCallback(lambda cause, index, stamp, msg: refused.append((cause, index, stamp)))
    for t in (2 * SEC, 2 * SEC, SEC + 999 * MS):  # a repeat, then a stamp older than the set
        sources[0].push(_msg(t))
        sources[1].push(_msg(t, 1))
    assert refused == [("duplicate", 0, 2 * SEC), ("duplicate", 1, 2 * SEC),
                       ("late", 0, SEC + 999 * MS), ("late", 1, SEC + 999 * MS)]
