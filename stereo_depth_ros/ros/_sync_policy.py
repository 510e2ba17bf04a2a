"""Synchronization policies on stamps (no rclpy): what the package's message_filters runs.

``InputGuard`` decides, per input, whether a message may enter a policy at all. A stamp equal
to the input's newest one is a ``duplicate``; an older one is ``out_of_order`` (the
approximate policy drops it, the exact one may still use it); an older one by more than
``reset_after_ns``, or ``reset_run`` older ones in a row, means that input's time went back
(a bag loop, a /clock reset) and starts a new epoch: what waited for proof is emitted, the
policy is cleared and sync resumes on the new time line. Inputs whose time has not gone back
yet are stragglers of the previous epoch (``previous_epoch``) until they jump too or their
stamps come within ``reset_after_ns`` of the new epoch.

``ExactPolicy``: a set when every input holds the same stamp; it takes messages in any order
(as message_filters does) but never emits a set at or behind the last one (``late``); older
stamps are dropped when a set leaves; at most ``queue_size`` stamps wait per input (the
oldest goes first).

``ApproximatePolicy``: message_filters' C++ ApproximateTime policy (ROS wiki
"message_filters/ApproximateTime"): the pivot is the latest of the queue heads; among the
sets containing it, the one with the smallest spread (latest minus earliest stamp) is
published once no message still to come can make a smaller one, so a set whose inputs are
skewed waits for the next message of its earliest input (one frame period). Each message is
used at most once and sets do not cross. ``max_interval_ns`` is its MaxIntervalDuration (the
package's ``slop``), the age penalty is 0 (the documented default), at most ``queue_size``
messages per input wait after the last published set, and an input that overflowed may not
be the next pivot. When the time line ends (``flush``), the waiting candidate is final.

Policies take ``add(index, stamp_ns, msg)`` and return the sets to emit, oldest first.
"""

from __future__ import annotations

from collections import deque
from typing import Any

Entry = tuple[int, Any]  # (stamp_ns, message)


class InputGuard:
    def __init__(self, n_inputs: int, reset_after_ns: int = 1_000_000_000, reset_run: int = 3,
                 adopt_after: int = 10) -> None:
        self.reset_after_ns = int(reset_after_ns)
        self.reset_run = int(reset_run)
        self.adopt_after = int(adopt_after)
        self.epoch = 0
        self._last: list[int | None] = [None] * n_inputs
        self._older_run = [0] * n_inputs
        self._input_epoch = [0] * n_inputs
        self._stale_run = [0] * n_inputs
        self._newest: int | None = None  # newest stamp admitted in the current epoch

    def check(self, index: int, stamp: int) -> tuple[str, bool]:
        """(verdict, new_epoch): verdict "ok" admits the message; ``new_epoch`` asks the caller
        to clear the policy first (this message is the first of a new time line)."""
        new_epoch = False
        last = self._last[index]
        if last is not None and stamp <= last:
            if stamp == last:
                return "duplicate", False
            self._older_run[index] += 1
            if last - stamp <= self.reset_after_ns and self._older_run[index] < self.reset_run:
                return "out_of_order", False
            self._input_epoch[index] += 1
            if self._input_epoch[index] > self.epoch:
                self.epoch = self._input_epoch[index]
                self._newest = None
                new_epoch = True
        self._older_run[index] = 0
        self._last[index] = stamp
        if self._input_epoch[index] < self.epoch:
            near = self._newest is None or stamp <= self._newest + self.reset_after_ns
            self._stale_run[index] += 1
            if not near and self._stale_run[index] <= self.adopt_after:
                return "previous_epoch", False
            self._input_epoch[index] = self.epoch
        self._stale_run[index] = 0
        self._newest = stamp if self._newest is None else max(self._newest, stamp)
        return "ok", new_epoch


class ExactPolicy:
    accepts_reordered = True  # stamps, not order, decide; a set older than the last one is late

    def __init__(self, n_inputs: int, queue_size: int) -> None:
        self.queue_size = int(queue_size)
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self._last_set: int | None = None
        self.dropped = 0
        self.late = 0

    def flush(self) -> list[list[Any]]:
        return []  # exact sets leave as soon as they are complete: nothing waits for proof

    def reset(self) -> int:
        n = sum(len(q) for q in self._queues)
        for q in self._queues:
            q.clear()
        self._last_set = None
        self.dropped += n
        return n

    def add(self, index: int, stamp: int, msg: Any) -> list[list[Any]]:
        if self._last_set is not None and stamp <= self._last_set:
            self.late += 1  # its set would repeat or go back behind the last one
            return []
        queue = self._queues[index]
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.dropped += 1
        if not all(stamp in q for q in self._queues):
            return []
        msgs = [q.pop(stamp) for q in self._queues]
        self._last_set = stamp
        for q in self._queues:
            for old in [s for s in q if s < stamp]:
                del q[old]
                self.dropped += 1
        return [msgs]


class ApproximatePolicy:
    accepts_reordered = False  # the policy assumes each input arrives in stamp order

    def __init__(self, n_inputs: int, queue_size: int, max_interval_ns: int) -> None:
        self.n = n_inputs
        self.queue_size = int(queue_size)
        self.max_interval_ns = int(max_interval_ns)
        self.dropped = 0
        self.late = 0  # (exact only; here out-of-order messages never reach the policy)
        self._heads: list[deque[Entry]] = [deque() for _ in range(n_inputs)]  # not yet passed
        self._passed: list[list[Entry]] = [[] for _ in range(n_inputs)]  # passed while searching
        self._overflowed = [False] * n_inputs
        self._clear_candidate()

    def _clear_candidate(self) -> None:
        self._candidate: list[Entry] | None = None
        self._pivot: int | None = None
        self._pivot_t = 0
        self._cand_start = 0
        self._cand_end = 0

    def flush(self) -> list[list[Any]]:
        """The time line ended (its inputs went back in time): the candidate waiting for proof
        is final, since no message of this time line is still to come."""
        out: list[list[Any]] = []
        if self._candidate is not None:
            self._publish(out)
        return out

    def reset(self) -> int:
        n = sum(len(h) + len(p) for h, p in zip(self._heads, self._passed, strict=True))
        for h, p in zip(self._heads, self._passed, strict=True):
            h.clear()
            p.clear()
        self._overflowed = [False] * self.n
        self._clear_candidate()
        self.dropped += n
        return n

    def add(self, index: int, stamp: int, msg: Any) -> list[list[Any]]:
        out: list[list[Any]] = []
        self._heads[index].append((stamp, msg))
        self._process(out)
        if len(self._heads[index]) + len(self._passed[index]) > self.queue_size:
            self._restore_passed()  # the search restarts without the dropped message
            self._heads[index].popleft()
            self.dropped += 1
            self._overflowed[index] = True
            if self._pivot is not None:
                self._clear_candidate()
                self._process(out)
        return out

    # ---- the search ----
    @staticmethod
    def _bounds(times: list[int]) -> tuple[int, int]:
        """(index of the earliest, first on ties; index of the latest, last on ties)."""
        start = min(range(len(times)), key=lambda k: (times[k], k))
        end = max(range(len(times)), key=lambda k: (times[k], k))
        return start, end

    def _process(self, out: list[list[Any]]) -> None:
        while all(self._heads):
            times = [h[0][0] for h in self._heads]
            start, end = self._bounds(times)
            for k in range(self.n):
                if k != end:  # no dropped message could have beaten these heads
                    self._overflowed[k] = False
            span = times[end] - times[start]
            if self._pivot is None:
                if span > self.max_interval_ns or self._overflowed[end]:
                    self._heads[start].popleft()
                    self.dropped += 1
                    continue
                self._take_candidate(times[start], times[end])
                self._pivot, self._pivot_t = end, times[end]
            elif span < self._cand_end - self._cand_start:
                self._take_candidate(times[start], times[end])
            self._passed[start].append(self._heads[start].popleft())
            best = self._cand_end - self._cand_start
            if start == self._pivot or times[end] - self._pivot_t >= best:
                # every set still to come contains [pivot, this end]: none can be smaller
                self._publish(out)
            elif not all(self._heads):
                self._try_proof(out)

    def _take_candidate(self, start_t: int, end_t: int) -> None:
        self._candidate = [h[0] for h in self._heads]
        self.dropped += sum(len(p) for p in self._passed)  # before the new candidate: hopeless
        for p in self._passed:
            p.clear()
        self._cand_start, self._cand_end = start_t, end_t

    def _try_proof(self, out: list[list[Any]]) -> None:
        """An input has nothing left to pass: assume its next message comes at the pivot time
        (the best it could do, messages arrive in order) and see whether the candidate still
        wins; if not, undo the trial and wait for real messages."""
        best = self._cand_end - self._cand_start
        moved: list[int] = []
        while True:
            times = [h[0][0] if h else max(self._passed[k][-1][0], self._pivot_t)
                     for k, h in enumerate(self._heads)]
            start, end = self._bounds(times)
            if times[end] - self._pivot_t >= best:
                self._publish(out)
                return
            if times[end] - times[start] < best:
                for k in reversed(moved):
                    self._heads[k].appendleft(self._passed[k].pop())
                return
            # the earliest is a real message before the pivot: pass it and look further
            self._passed[start].append(self._heads[start].popleft())
            moved.append(start)

    def _restore_passed(self) -> None:
        for h, p in zip(self._heads, self._passed, strict=True):
            h.extendleft(reversed(p))
            p.clear()

    def _publish(self, out: list[list[Any]]) -> None:
        out.append([m for _, m in self._candidate or ()])
        self._restore_passed()
        for h in self._heads:  # each input's candidate message is now its first one
            h.popleft()
        self._clear_candidate()
