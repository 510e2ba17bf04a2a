"""The synchronizer's account (ros/sync_monitor.SyncMonitor) stays exact through what a looped
bag and a live camera do to stamps: every message is paired, given up or still waiting, per
input, at every moment; stamps that repeat (each pass of a bag) are told apart."""

import random

import pytest
from sensor_msgs.msg import Image

from stereo_depth_ros.ros import _message_filters
from stereo_depth_ros.ros.sync_monitor import SyncMonitor


class Source(_message_filters.SimpleFilter):
    def push(self, msg):
        self.signalMessage(msg)


def msg_at(ns):
    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    return m


COUNTED_REFUSALS = ("duplicate", "out_of_order", "late")  # the ones WorkerNode counts by cause


def wired(approximate, queue_size=5):
    """Two inputs through the package's synchronizer, watched as WorkerNode watches them (its
    first input's refused messages counted by cause and taken out of the account)."""
    sources = [Source(), Source()]
    monitor = SyncMonitor(["l", "r"], queue_size)
    for i, src in enumerate(sources):  # seen before the synchronizer gets it
        src.registerCallback(lambda m, i=i: monitor.seen(i, _message_filters._stamp_ns(m), m))
    if approximate:
        sync = _message_filters.ApproximateTimeSynchronizer(sources, queue_size, 0.05)
    else:
        sync = _message_filters.TimeSynchronizer(sources, queue_size)
    sets = []

    def on_set(*msgs):
        monitor.matched([_message_filters._stamp_ns(m) for m in msgs], msgs)
        sets.append(msgs)

    def on_refused(cause, index, stamp, msg):
        if index == 0 and cause in COUNTED_REFUSALS:
            monitor.refused(index, stamp, msg)
            monitor.counted_refusals += 1

    sync.registerCallback(on_set)
    sync.registerRefusalCallback(on_refused)
    monitor.counted_refusals = 0
    return sources, monitor, sets


def check(monitor):
    waiting = monitor.in_flight()
    for i, (received, unsynchronized) in enumerate(monitor.per_input().values()):
        assert unsynchronized >= 0
        counted = monitor.counted_refusals if i == 0 else 0
        assert received == monitor.sets + unsynchronized + waiting[i] + counted, (
            i, monitor.per_input(), waiting, counted)


@pytest.mark.parametrize("approximate", [False, True])
def test_a_looped_bag_pairs_every_frame_of_every_pass(approximate):
    sources, monitor, sets = wired(approximate)
    skew = 25_000_000 if approximate else 0
    for _ in range(3):  # three passes over the same 20 stamps
        for k in range(20):
            t = 1_600_000_000 * 10**9 + k * 100_000_000
            sources[0].push(msg_at(t))
            sources[1].push(msg_at(t + skew))
            check(monitor)
    assert monitor.unsynchronized <= 2 and monitor.sets >= 60 - 3  # the approximate policy may hold one


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_random_streams_keep_the_account_exact(approximate, seed):
    rng = random.Random(seed)
    sources, monitor, _ = wired(approximate, queue_size=rng.choice((1, 3, 5)))
    base = 1_000 * 10**9
    for _ in range(400):
        k = rng.randrange(60)
        if rng.random() < 0.05:
            base -= rng.choice((10**9, 5 * 10**9))  # a loop or a /clock reset
        t = base + k * 50_000_000
        for i in rng.sample((0, 1), 2):
            if rng.random() < 0.85:  # drops on either side
                jitter = rng.choice((0, 0, 3_000_000, -2_000_000)) if approximate else 0
                msg = msg_at(t + jitter)
                sources[i].push(msg)
                if rng.random() < 0.05:
                    sources[i].push(msg)  # the very same message twice
        if rng.random() < 0.3:
            base += 50_000_000
        check(monitor)


def test_heard_since_tells_a_resumed_input_from_a_paused_source():
    import time

    from stereo_depth_ros.ros.sync_monitor import SyncMonitor

    monitor = SyncMonitor(["left", "right"], 5)
    monitor.seen(0, 100)
    began = time.monotonic()
    assert not monitor.heard_since(("right",), began)  # the left alone keeps arriving
    monitor.seen(0, 200)
    assert not monitor.heard_since(("right",), began) and monitor.heard_since(("left",), began)
    monitor.seen(1, 200)
    assert monitor.heard_since(("right",), began)
