"""The package's own message_filters equivalent (used when ROS's message_filters is absent).

Same call shapes as ROS 2 ``message_filters`` (Python):
``Subscriber(node, msg_type, topic, qos_profile=...)``, ``TimeSynchronizer(fs, queue_size)``,
``ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless=False)`` and
``registerCallback(cb, *args)`` on every filter.

Approximate policy, as message_filters defines it: each input keeps at most ``queue_size``
messages keyed by stamp (the oldest is dropped first); when a message arrives, the other
inputs' queues are searched for stamps within ``slop`` seconds of it, the combination whose
stamps span the least time (and less than ``slop``) is emitted, and its messages leave the
queues. Exact policy: a set is emitted when every input holds a message with the same stamp;
older incomplete stamps are discarded at that moment, and at most ``queue_size`` incomplete
stamps are kept.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import rclpy.qos
from rclpy.clock import ROSClock


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class SimpleFilter:
    """A source of messages: callbacks registered here get every message it signals."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 (ROS API)
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 (ROS API)
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


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
        return getattr(self.__dict__["sub"], name)


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

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = int(queue_size)
        self.lock = threading.Lock()
        self.connectInput(fs)

    def connectInput(self, fs: Sequence[SimpleFilter]) -> None:  # noqa: N802 (ROS API)
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q)
                                  for f, q in zip(fs, self.queues, strict=True)]

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        ns = _stamp_ns(msg)
        with self.lock:
            my_queue[ns] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            if not all(ns in q for q in self.queues):
                return
            msgs = [q.pop(ns) for q in self.queues]
            for q in self.queues:  # a set at this stamp makes older incomplete ones hopeless
                for old in [s for s in q if s < ns]:
                    del q[old]
        self.signalMessage(*msgs)


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Emits tuples whose stamps lie within ``slop`` seconds of each other (approximate time)."""

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int, slop: float,
                 allow_headerless: bool = False) -> None:
        super().__init__(fs, queue_size)
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.slop_ns = int(round(float(slop) * 1e9))
        self.allow_headerless = allow_headerless

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        if hasattr(msg, "header") and hasattr(msg.header, "stamp"):
            ns = _stamp_ns(msg)
        elif self.allow_headerless:
            ns = ROSClock().now().nanoseconds
        else:
            return
        with self.lock:
            my_queue[ns] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            index = next(i for i, q in enumerate(self.queues) if q is my_queue)
            candidates: list[list[int]] = []
            for i, q in enumerate(self.queues):
                if i == index:
                    candidates.append([ns])
                    continue
                near = sorted((s for s in q if abs(s - ns) <= self.slop_ns), key=lambda s: abs(s - ns))
                if not near:
                    return
                candidates.append(near)
            best: tuple[int, ...] | None = None
            for combo in itertools.product(*candidates):
                span = max(combo) - min(combo)
                if span <= self.slop_ns and (best is None or span < max(best) - min(best)):
                    best = combo
            if best is None:
                return
            msgs = [q.pop(s) for q, s in zip(self.queues, best, strict=True)]
        self.signalMessage(*msgs)
