"""Counting the input messages a synchronizer never paired (ROS's message_filters cannot say).

Every message is ``seen`` before the synchronizer gets it; every emitted set is ``matched``.
A message is unsynchronized once it can no longer be part of a set: a set with a later stamp
was emitted on its input after it arrived, or ``window`` (the synchronizer's queue_size) newer
messages arrived on its input. Messages are told apart by identity, not stamp: a bag that
loops repeats every stamp. A message declared unsynchronized that a set uses after all (a
synchronizer that kept it longer, e.g. across a time jump) is taken back, so at every moment
received = matched + unsynchronized + waiting, per input. Thread-safe; no rclpy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

RESET_NS = 1_000_000_000  # a stamp this much older than its input's newest: time went back


class SyncMonitor:
    def __init__(self, names: Sequence[str], window: int) -> None:
        self.names = list(names)
        self.window = max(int(window), 1)
        # per input, in arrival order: key -> stamp, waiting for a set / declared unsynchronized
        self._pending: list[OrderedDict[int, int]] = [OrderedDict() for _ in self.names]
        self._gone: list[OrderedDict[int, int]] = [OrderedDict() for _ in self.names]
        self._tokens = 0
        self.received = [0] * len(self.names)
        self.unmatched = [0] * len(self.names)
        self.sets = 0
        self.last_set_time: float | None = None
        self.last_seen_time: float | None = None
        self.first_seen_time: float | None = None
        self.input_seen_time: list[float | None] = [None] * len(self.names)
        # per input: its newest stamp, and up to two newer stamps other inputs have delivered
        # since (two: the others have gone on by more than the one set a late message belongs to)
        self._newest: list[int | None] = [None] * len(self.names)
        self._ahead: list[set[int]] = [set() for _ in self.names]
        self._lock = threading.Lock()

    def _key(self, msg: Any) -> int:
        if msg is not None:
            return id(msg)
        self._tokens -= 1  # no message given (tests): a fresh token; sets then match by stamp
        return self._tokens

    def _give_up(self, index: int, key: int, stamp: int) -> None:
        self.unmatched[index] += 1
        gone = self._gone[index]
        gone[key] = stamp
        while len(gone) > 8 * self.window:
            gone.popitem(last=False)

    def seen(self, index: int, stamp_ns: int, msg: Any = None) -> None:
        with self._lock:
            self.received[index] += 1
            self.last_seen_time = time.monotonic()
            self.input_seen_time[index] = self.last_seen_time
            self._note_stamp(index, int(stamp_ns))
            if self.first_seen_time is None:
                self.first_seen_time = self.last_seen_time
            pending = self._pending[index]
            key = self._key(msg)
            if key in pending:  # an id is reused only once its message is freed: that one is gone
                self._give_up(index, key, pending.pop(key))
            pending[key] = int(stamp_ns)
            while len(pending) > self.window:
                self._give_up(index, *pending.popitem(last=False))

    def _note_stamp(self, index: int, stamp: int) -> None:
        """Keep who is behind whom after input ``index`` delivered ``stamp`` (lock held)."""
        newest = self._newest[index]
        if newest is not None and newest - stamp > RESET_NS:
            # its time went back (bag loop, clock restart): the others' stamps are of the old time
            self._newest = [None] * len(self.names)
            self._ahead = [set() for _ in self.names]
        elif newest is not None and stamp <= newest:
            return  # a repeat or one delivered out of order: nothing changes
        self._newest[index] = stamp
        self._ahead[index] = {s for s in self._ahead[index] if s > stamp}
        for k, other in enumerate(self._newest):
            if k != index and (other is None or stamp > other) and len(self._ahead[k]) < 2:
                self._ahead[k].add(stamp)

    def matched(self, stamps_ns: Sequence[int], msgs: Sequence[Any] | None = None) -> None:
        with self._lock:
            self.sets += 1
            self.last_set_time = time.monotonic()
            for index, stamp in enumerate(stamps_ns):
                stamp = int(stamp)
                pending = self._pending[index]
                msg = msgs[index] if msgs is not None else None
                key = self._find(pending, stamp, msg)
                if key is None:
                    self._take_back(index, stamp, msg)  # if given up too early: it did pair
                    continue
                for old, old_stamp in list(pending.items()):
                    if old == key:
                        break
                    if old_stamp < stamp:  # arrived earlier, older than a set that left: hopeless
                        del pending[old]
                        self._give_up(index, old, old_stamp)
                del pending[key]

    def refused(self, index: int, stamp_ns: int, msg: Any = None) -> None:
        """The synchronizer refused this message and the node counted it by its cause: it is
        neither waiting nor unsynchronized any more (else it would be counted twice)."""
        with self._lock:
            stamp = int(stamp_ns)
            pending = self._pending[index]
            key = self._find(pending, stamp, msg)
            if key is not None:
                del pending[key]
            else:
                self._take_back(index, stamp, msg)

    def _take_back(self, index: int, stamp: int, msg: Any) -> None:
        """Undo the give-up of a message that turned out not to be unsynchronized (lock held)."""
        gone = self._gone[index]
        key = self._find(gone, stamp, msg)
        if key is not None:
            del gone[key]
            self.unmatched[index] -= 1

    @staticmethod
    def _find(entries: OrderedDict[int, int], stamp: int, msg: Any) -> int | None:
        if msg is not None:
            return id(msg) if entries.get(id(msg)) == stamp else None
        return next((k for k, s in entries.items() if s == stamp), None)

    @property
    def unsynchronized(self) -> int:
        return sum(self.unmatched)

    def stalled(self, after_s: float = 2.0) -> bool:
        """Messages arrive but no set has been emitted for ``after_s`` seconds."""
        with self._lock:
            if self.last_seen_time is None or time.monotonic() - self.last_seen_time > after_s:
                return False
            last = self.last_set_time if self.last_set_time is not None else self.first_seen_time
            return time.monotonic() - last > after_s

    def silent_inputs(self, after_s: float = 2.0) -> dict[str, float | None]:
        """Inputs quiet for more than ``after_s`` seconds while another input is still arriving
        and has gone on by at least two stamps since this one's newest (one camera stopped):
        name -> seconds since its last message (None: never heard). A message that is late, such
        as a large image of a slow source arriving long after its camera_info, leaves its input
        one set behind, not two: it is not a stall."""
        with self._lock:
            now = time.monotonic()
            ages = [None if t is None else now - t for t in self.input_seen_time]
            if not any(a is not None and a <= after_s for a in ages):
                return {}  # everything quiet: the source stopped, not one input
            return {n: a for n, a, ahead in zip(self.names, ages, self._ahead, strict=True)
                    if (a is None or a > after_s) and len(ahead) >= 2}

    def heard_since(self, names: Sequence[str], since: float) -> bool:
        """Whether any of the inputs ``names`` delivered a message after ``since`` (monotonic s)."""
        with self._lock:
            return any(t is not None and t > since
                       for n, t in zip(self.names, self.input_seen_time, strict=True) if n in names)

    def in_flight(self) -> list[int]:
        """Per input: messages received and waiting for their set (neither paired nor counted)."""
        with self._lock:
            return [len(p) for p in self._pending]

    def per_input(self) -> dict[str, tuple[int, int]]:
        """name -> (received, unsynchronized)."""
        with self._lock:
            return {n: (r, u) for n, r, u in zip(self.names, self.received, self.unmatched, strict=True)}
