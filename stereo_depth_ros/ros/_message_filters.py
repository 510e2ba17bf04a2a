"""The package's own message_filters equivalent (used when ROS's message_filters is absent).

Same call shapes as ROS 2 ``message_filters`` (Python):
``Subscriber(node, msg_type, topic, qos_profile=...)``, ``TimeSynchronizer(fs, queue_size)``,
``ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless=False)`` and
``registerCallback(cb, *args)`` on every filter.

The policies are those of message_filters' C++ synchronizers, which stereo_image_proc uses
(``_sync_policy``): exact time, and ApproximateTime as the ROS wiki defines it (smallest
spread around a pivot, each message used once, sets never cross) with ``slop`` as its largest
spread. ROS's own *Python* ApproximateTimeSynchronizer is a different, greedy algorithm; see
docs/sync.md for where the two differ. Each input must advance in time: repeated and
out-of-order stamps are dropped, and time going back (a bag loop, a /clock reset) starts the
synchronizer afresh on the new time line instead of waiting for stamps that never come.

A synchronizer never raises into the executor: an exception in a downstream callback is
logged (once per 2 s) and counted in ``errors``; drops are counted by cause in ``drops``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import rclpy.logging
import rclpy.qos
from rclpy.clock import ROSClock

from stereo_depth_ros.ros._sync_policy import ApproximatePolicy, ExactPolicy, InputGuard


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class SimpleFilter:
    """A source of messages: callbacks registered here get every message it signals."""

    logger_name = "message_filters"

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self.errors = 0  # exceptions caught from callbacks (and, in synchronizers, from itself)
        self._last_log = -1e9

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 (ROS API)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 (ROS API)
        """Calls every callback; one that raises is logged and counted, the others still run."""
        for cb, args in list(self.callbacks.values()):
            try:
                cb(*(msg + args))
            except Exception as exc:
                self.errors += 1
                self._log(f"callback {getattr(cb, '__qualname__', cb)!s} raised {exc!r} "
                          f"[{self.errors} errors so far]")

    def _log(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= 2.0:
            self._last_log = now
            rclpy.logging.get_logger(self.logger_name).error(text)


class Subscriber(SimpleFilter):
    """An rclpy subscription that passes every message on to its callbacks."""

    def __init__(self, node: Any, msg_type: type, topic: str, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        qos = kwargs.pop("qos_profile", rclpy.qos.QoSProfile(depth=10))
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (ROS API)
        return self.sub.topic_name

    def __getattr__(self, name: str) -> Any:
        sub = self.__dict__.get("sub")
        if sub is None:
            raise AttributeError(name)
        return getattr(sub, name)


class Cache(SimpleFilter):
    """Keeps the last ``cache_size`` messages of a filter (the message_filters Cache shape)."""

    def __init__(self, f: SimpleFilter, cache_size: int = 1) -> None:
        super().__init__()
        self.cache_size = cache_size
        self.cache_msgs: list[Any] = []
        f.registerCallback(self.add)

    def add(self, msg: Any) -> None:
        self.cache_msgs.append(msg)
        del self.cache_msgs[: -self.cache_size]
        self.signalMessage(msg)


class TimeSynchronizer(SimpleFilter):
    """Emits one tuple per stamp that every input has delivered (exact time)."""

    logger_name = "message_filters.exact"

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int) -> None:
        super().__init__()
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = int(queue_size)
        self.lock = threading.RLock()
        self.drops: dict[str, int] = {"duplicate": 0, "out_of_order": 0, "previous_epoch": 0,
                                      "late": 0, "no_stamp": 0, "policy": 0}
        self.epochs = 0  # times the inputs' time went back and sync started afresh
        self.connectInput(fs)

    def _make_policy(self, n: int) -> ExactPolicy | ApproximatePolicy:
        return ExactPolicy(n, self.queue_size)

    def connectInput(self, fs: Sequence[SimpleFilter]) -> None:  # noqa: N802 (ROS API)
        self.queues = [{} for _ in fs]  # kept for the ROS call shape; the policy holds the messages
        self._guard = InputGuard(len(fs))
        self._policy = self._make_policy(len(fs))
        self.input_connections = [f.registerCallback(self.add, q, i)
                                  for i, (f, q) in enumerate(zip(fs, self.queues, strict=True))]

    def _stamp(self, msg: Any) -> int | None:
        header = getattr(msg, "header", None)
        if header is None or not hasattr(header, "stamp"):
            return None
        return _stamp_ns(msg)

    def add(self, msg: Any, my_queue: Any = None, my_queue_index: int | None = None) -> None:
        """One message of input ``my_queue_index``: admitted, matched and any set emitted."""
        with self.lock:
            try:
                index = my_queue_index if my_queue_index is not None else self._index_of(my_queue)
                stamp = self._stamp(msg)
                if stamp is None:
                    self.drops["no_stamp"] += 1
                    self._log(f"dropped a {type(msg).__name__} message without header.stamp "
                              f"[no_stamp: {self.drops['no_stamp']} so far]")
                    return
                verdict, new_epoch = self._guard.check(index, stamp)
                if verdict == "out_of_order" and self._policy.accepts_reordered:
                    verdict = "ok"
                if verdict != "ok":
                    self.drops[verdict] += 1
                    return
                sets = []
                if new_epoch:  # the old time line is over: what waited for proof is final
                    self.epochs += 1
                    sets = self._policy.flush()
                    self._policy.reset()
                before = self._policy.dropped, self._policy.late
                sets += self._policy.add(index, stamp, msg)
                self.drops["policy"] += self._policy.dropped - before[0]
                self.drops["late"] += self._policy.late - before[1]
            except Exception as exc:  # never into the executor: start afresh instead
                self.errors += 1
                self._log(f"synchronizer error, its queues are cleared: {exc!r} "
                          f"[{self.errors} errors so far]")
                self._guard = InputGuard(len(self.queues))
                self._policy = self._make_policy(len(self.queues))
                return
            for group in sets:  # under the lock: sets leave in the order they were decided
                self.signalMessage(*group)

    def _index_of(self, my_queue: Any) -> int:
        return next(i for i, q in enumerate(self.queues) if q is my_queue)


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Emits tuples whose stamps lie within ``slop`` seconds of each other (approximate time)."""

    logger_name = "message_filters.approximate"

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int, slop: float,
                 allow_headerless: bool = False) -> None:
        if not float(slop) >= 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.slop = float(slop)
        self.slop_ns = int(round(min(self.slop, 1e9) * 1e9))  # inf: any spread
        self.allow_headerless = allow_headerless
        super().__init__(fs, queue_size)

    def _make_policy(self, n: int) -> ExactPolicy | ApproximatePolicy:
        return ApproximatePolicy(n, self.queue_size, self.slop_ns)

    def _stamp(self, msg: Any) -> int | None:
        stamp = super()._stamp(msg)
        if stamp is None and self.allow_headerless:
            return ROSClock().now().nanoseconds
        return stamp
