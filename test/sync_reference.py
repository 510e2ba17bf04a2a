"""Reference models of message_filters' synchronization policies, written for the tests from
their documentation, and the stamp streams the property tests feed them.

- ``offline_approximate``: the ROS wiki's ApproximateTime definition applied to complete
  per-input streams (each message used once, sets do not cross, the pivot is the latest head,
  the set containing it with the smallest spread, first by start on ties), the spread checked
  by brute force over every set containing the pivot.
- ``ApproximateReference``: the same policy online, as messages arrive: a set is published
  only once no message still to come can make a smaller one (the wiki: "the output only
  depends on the time stamps"), at most ``queue_size`` messages wait per input after the last
  set (the oldest is dropped, the search starts again and that input may not be the next
  pivot), sets wider than the maximum interval (``slop``) are never formed. Each arrival
  re-runs the search over the waiting messages, keeping only the pivot of a search that had to
  wait (the package's keeps its whole search state).
- ``ExactReference``: message_filters' ExactTime: a set when every input has the stamp; the
  package keeps ``queue_size`` stamps per input (the Python API's meaning) and never emits a
  set at or behind the last one.
- ``ReferenceGuard``: the package's documented input rule (docs/sync.md): repeats and older
  stamps are dropped (exact: older ones may still complete a newer set), time going back
  more than 1 s (or 3 older stamps in a row) on an input starts a new epoch.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from hypothesis import strategies as st

SEC = 1_000_000_000
MS = 1_000_000


def _start_end(times: list[int]) -> tuple[int, int]:
    """Index of the earliest (first among equals) and of the latest (last among equals)."""
    earliest = min(times)
    latest = max(times)
    return times.index(earliest), len(times) - 1 - times[::-1].index(latest)


# ---- ApproximateTime, offline (complete streams) ----

def offline_approximate(streams: list[list[int]], max_interval: int) -> list[tuple[int, ...]]:
    """Sets of message indices (one per input) that ApproximateTime forms from complete,
    ordered streams of stamps, with no queue limit."""
    n = len(streams)
    first = [0] * n  # first message of each input after the last set
    out = []
    while all(first[k] < len(streams[k]) for k in range(n)):
        heads = [streams[k][first[k]] for k in range(n)]
        s, e = _start_end(heads)
        if heads[e] - heads[s] > max_interval:  # too wide: the earliest head is never used
            first[s] += 1
            continue
        pivot, pivot_t = e, heads[e]
        # every set containing the pivot message: the smallest spread, by brute force
        choices = [[first[pivot]] if k == pivot else
                   [i for i in range(first[k], len(streams[k])) if streams[k][i] <= pivot_t + max_interval]
                   for k in range(n)]
        spread = min(max(streams[k][i] for k, i in enumerate(c)) - min(streams[k][i] for k, i in enumerate(c))
                     for c in itertools.product(*choices))
        # the set itself: for the earliest start tau giving that spread, each input's first
        # message at or after tau (the tie rule of sliding the earliest head forward)
        taus = sorted({streams[k][i] for k in range(n) for i in range(first[k], len(streams[k]))
                       if streams[k][i] <= pivot_t})
        chosen = None
        for tau in taus:
            idx = []
            for k in range(n):
                later = [i for i in range(first[k], len(streams[k])) if streams[k][i] >= tau]
                if not later:
                    break
                idx.append(later[0])
            if len(idx) < n:
                break
            stamps = [streams[k][i] for k, i in enumerate(idx)]
            if max(stamps) - min(stamps) == spread:
                chosen = tuple(idx)
                break
        assert chosen is not None and chosen[pivot] == first[pivot], "the definition always finds a set"
        out.append(chosen)
        first = [i + 1 for i in chosen]
    return out


# ---- ApproximateTime, online ----

class ApproximateReference:
    def __init__(self, n: int, queue_size: int, max_interval: int) -> None:
        self.n, self.queue_size, self.max_interval = n, queue_size, max_interval
        self.waiting: list[list[tuple[int, object]]] = [[] for _ in range(n)]
        self.overflowed = [False] * n
        self.pivot: tuple[int, int] | None = None  # (input, stamp) of the search under way
        self.exhausted: set[int] = set()  # inputs the waiting search has run through

    def add(self, k: int, stamp: int, msg: object) -> list[list[object]]:
        self.waiting[k].append((stamp, msg))
        # a search that waits looks again when an input it had run through gets a message
        # (the C++ policy's timing: a message behind others it has not looked at yet does not
        # make it look, even where that message would already prove the waiting set best)
        out = self._settle() if self.pivot is None or k in self.exhausted else []
        if len(self.waiting[k]) > self.queue_size:
            self.waiting[k].pop(0)
            self.overflowed[k] = True
            if self.pivot is not None:  # the search starts again without that message
                self.pivot = None
                out += self._settle()
        return out

    def end_of_time_line(self) -> list[list[object]]:
        """No message of this time line will come: a candidate waiting for proof is final."""
        out = [[m for _, m in (q[0] for q in self.waiting)]] if self.pivot is not None else []
        self.waiting = [[] for _ in range(self.n)]
        self.overflowed = [False] * self.n
        self.pivot = None
        return out

    def _consume(self, chosen: list[tuple[int, object]]) -> None:
        for k in range(self.n):
            self.waiting[k] = self.waiting[k][self.waiting[k].index(chosen[k]) + 1:]

    def _settle(self) -> list[list[object]]:
        out = []
        while all(self.waiting):
            w = self.waiting
            heads = [q[0][0] for q in w]
            s, e = _start_end(heads)
            for k in range(self.n):
                if k != e:
                    self.overflowed[k] = False
            if self.pivot is None:  # a new search: the latest head is the pivot
                if heads[e] - heads[s] > self.max_interval or self.overflowed[e]:
                    w[s].pop(0)
                    continue
                self.pivot = (e, heads[e])
            # (a search that waited resumes: the waiting messages start at its best set)
            pivot, pivot_t = self.pivot
            pos = [0] * self.n  # each input's message in the set being looked at
            best, best_spread = [q[0] for q in w], heads[e] - heads[s]
            verdict = None
            while verdict is None:
                times = [w[k][pos[k]][0] for k in range(self.n)]
                s, e = _start_end(times)
                pos[s] += 1  # look at the sets that start later
                if s == pivot or times[e] - pivot_t >= best_spread:
                    verdict = "publish"
                elif any(pos[k] == len(w[k]) for k in range(self.n)):
                    verdict = "publish" if self._proven(pos, pivot_t, best_spread) else "wait"
                else:
                    times = [w[k][pos[k]][0] for k in range(self.n)]
                    s, e = _start_end(times)
                    for k in range(self.n):
                        if k != e:
                            self.overflowed[k] = False
                    if times[e] - times[s] < best_spread:
                        best = [w[k][pos[k]] for k in range(self.n)]
                        best_spread = times[e] - times[s]
            if verdict == "wait":
                self.exhausted = {k for k in range(self.n) if pos[k] == len(w[k])}
            for k in range(self.n):  # messages before the best set can never be used
                self.waiting[k] = self.waiting[k][self.waiting[k].index(best[k]):]
            if verdict == "wait":
                return out
            out.append([m for _, m in best])
            self._consume(best)
            self.pivot = None
        return out

    def _proven(self, pos: list[int], pivot_t: int, best_spread: int) -> bool:
        """Could messages still to come (each input in order, so none before its last one)
        form a set with a smaller spread containing the pivot? Optimistically each exhausted
        input's next message comes at the pivot time."""
        pos = list(pos)
        w = self.waiting
        while True:
            times = [w[k][pos[k]][0] if pos[k] < len(w[k]) else max(w[k][-1][0], pivot_t)
                     for k in range(self.n)]
            s, e = _start_end(times)
            if times[e] - pivot_t >= best_spread:
                return True
            if times[e] - times[s] < best_spread:
                return False
            pos[s] += 1


# ---- ExactTime ----

class ExactReference:
    def __init__(self, n: int, queue_size: int) -> None:
        self.n, self.queue_size = n, queue_size
        self.stamps: list[list[int]] = [[] for _ in range(n)]  # per input, in arrival order
        self.msgs: dict[tuple[int, int], object] = {}
        self.last_set: int | None = None

    def add(self, k: int, stamp: int, msg: object) -> list[list[object]]:
        if self.last_set is not None and stamp <= self.last_set:
            return []
        if stamp not in self.stamps[k]:
            self.stamps[k].append(stamp)
        self.msgs[(k, stamp)] = msg  # a repeated stamp replaces the waiting message
        while len(self.stamps[k]) > self.queue_size:
            oldest = min(self.stamps[k])
            self.stamps[k].remove(oldest)
            del self.msgs[(k, oldest)]
        if not all(stamp in self.stamps[j] for j in range(self.n)):
            return []
        out = [self.msgs[(j, stamp)] for j in range(self.n)]
        self.last_set = stamp
        for j in range(self.n):
            for old in [t for t in self.stamps[j] if t <= stamp]:
                self.stamps[j].remove(old)
                del self.msgs[(j, old)]
        return [out]

    def end_of_time_line(self) -> list[list[object]]:
        self.__init__(self.n, self.queue_size)
        return []


# ---- the input rule ----

class ReferenceGuard:
    def __init__(self, n: int, reset_after: int = SEC, older_run: int = 3, adopt_after: int = 10) -> None:
        self.n, self.reset_after, self.older_run, self.adopt_after = n, reset_after, older_run, adopt_after
        self.newest_seen: list[int | None] = [None] * n
        self.older_in_a_row = [0] * n
        self.line = [0] * n        # the time line (epoch) each input is on
        self.current = 0
        self.newest_admitted: int | None = None
        self.stragglers = [0] * n

    def verdict(self, k: int, stamp: int) -> tuple[str, bool]:
        seen = self.newest_seen[k]
        jumped = False
        if seen is not None and stamp == seen:
            return "duplicate", False
        if seen is not None and stamp < seen:
            self.older_in_a_row[k] += 1
            if seen - stamp > self.reset_after or self.older_in_a_row[k] >= self.older_run:
                jumped = True
            else:
                return "out_of_order", False
        self.older_in_a_row[k] = 0
        self.newest_seen[k] = stamp
        new_line = False
        if jumped:
            self.line[k] += 1
            if self.line[k] > self.current:
                self.current, self.newest_admitted, new_line = self.line[k], None, True
        if self.line[k] < self.current:
            self.stragglers[k] += 1
            close = self.newest_admitted is None or stamp - self.newest_admitted <= self.reset_after
            if not close and self.stragglers[k] <= self.adopt_after:
                return "previous_epoch", False
            self.line[k] = self.current
        self.stragglers[k] = 0
        if self.newest_admitted is None or stamp > self.newest_admitted:
            self.newest_admitted = stamp
        return "ok", new_line


@dataclass
class ReferenceSync:
    """Guard + policy, as the package's synchronizers are documented to combine them."""
    n: int
    queue_size: int
    slop: int | None  # None: exact time
    emitted: list[list[object]] = field(default_factory=list)
    epoch_of_set: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guard = ReferenceGuard(self.n)
        self.policy = self._policy()

    def _policy(self):
        if self.slop is None:
            return ExactReference(self.n, self.queue_size)
        return ApproximateReference(self.n, self.queue_size, self.slop)

    def add(self, k: int, stamp: int, msg: object) -> None:
        verdict, new_line = self.guard.verdict(k, stamp)
        if verdict == "out_of_order" and self.slop is None:
            verdict = "ok"
        if verdict != "ok":
            return
        sets = []
        if new_line:
            sets = self.policy.end_of_time_line()
            self.policy = self._policy()
        for s in sets:
            self.emitted.append(s)
            self.epoch_of_set.append(self.guard.current - 1)
        for s in self.policy.add(k, stamp, msg):
            self.emitted.append(s)
            self.epoch_of_set.append(self.guard.current)


# ---- stamp streams ----

@dataclass
class Stream:
    n: int
    queue_size: int
    slop: int
    arrivals: list[tuple[int, int]]  # (input, stamp ns), in arrival order
    loops: int                       # how many times the recording is played
    in_order: bool                   # every input's stamps strictly increase, one time line
    note: str = ""

    def per_input(self) -> list[list[int]]:
        return [[s for k, s in self.arrivals if k == i] for i in range(self.n)]


@st.composite
def streams(draw, in_order_only: bool = False, min_inputs: int = 2, max_inputs: int = 4) -> Stream:
    """Stamp streams as cameras, drivers, bags and simulators produce them: per-input skew and
    jitter, drops on one side, duplicates, reordering, bag loops and /clock resets (time goes
    back), forward jumps, bursts longer than the queue, an input that falls silent."""
    n = draw(st.integers(min_inputs, max_inputs))
    queue_size = draw(st.integers(1, 8))
    slop = draw(st.sampled_from([0, 1, 5, 10, 20, 50, 120])) * MS
    period = draw(st.sampled_from([5, 10, 33, 50, 100, 200])) * MS
    frames = draw(st.integers(1, 40))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    paired = draw(st.booleans())  # inputs 2k and 2k+1 share stamps (an image and its camera_info)
    skews = [rng.choice([0, 0, rng.randint(-30, 30), rng.randint(-200, 200)]) * MS // 2 for _ in range(n)]
    jitter = draw(st.sampled_from([0, 0, 1, 3, 20])) * MS
    drop = [draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])) for _ in range(n)]
    silent_after = [rng.choice([None, None, None, rng.randint(0, frames)]) for _ in range(n)]
    burst = draw(st.sampled_from([0, 0, 1, 3, 12]))  # frames one input lags behind in arrival
    start = draw(st.sampled_from([0, 1, 1_600_000_000])) * SEC + rng.randint(0, SEC)
    forward_jump = draw(st.sampled_from([None, None, 2 * SEC, 3600 * SEC]))
    dup, reorder = 0.0, 0.0
    loops, clock_reset = 1, False
    if not in_order_only:
        dup = draw(st.sampled_from([0.0, 0.0, 0.1]))
        reorder = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
        loops = draw(st.sampled_from([1, 1, 2, 3]))
        clock_reset = draw(st.booleans())
    recording: list[list[int]] = [[] for _ in range(n)]
    for f in range(frames):
        base = start + f * period + (forward_jump if forward_jump and f >= frames // 2 else 0)
        this_frame: list[int | None] = [None] * n
        for i in range(n):
            if silent_after[i] is not None and f >= silent_after[i] or rng.random() < drop[i]:
                continue
            if paired and i % 2:  # a camera_info carries its image's stamp, when there is one
                this_frame[i] = this_frame[i - 1]
            else:
                this_frame[i] = max(base + skews[i] + (rng.randint(-jitter, jitter) if jitter else 0), 0)
            if this_frame[i] is not None:
                recording[i].append(this_frame[i])
    for i in range(n):  # a driver stamps its own frames in order; duplicates come on top
        recording[i] = sorted(set(recording[i]))
    arrivals: list[tuple[float, int, int]] = []
    offset = 0
    for loop in range(loops):
        shift = 0 if loop == 0 or not clock_reset else -start + rng.randint(0, 5) * SEC
        for i in range(n):
            lag = burst * period if burst and i == 0 else 0
            for stamp in recording[i]:
                t = offset + (stamp - start) + lag + rng.random() * max(jitter, MS)
                arrivals.append((t, i, stamp + shift))
                if rng.random() < dup:
                    arrivals.append((t + 1, i, stamp + shift))
        offset += (frames + 2) * period + (forward_jump or 0) + burst * period
    arrivals.sort()
    order = [(i, s) for _, i, s in arrivals]
    if in_order_only:  # jitter in arrival may not swap an input's own messages here
        for i in range(n):
            slots = [a for a, (k, _) in enumerate(order) if k == i]
            for a, stamp in zip(slots, sorted(order[a][1] for a in slots), strict=True):
                order[a] = (i, stamp)
    if reorder:
        for a in range(len(order) - 1):
            if order[a][0] == order[a + 1][0] and rng.random() < reorder:
                order[a], order[a + 1] = order[a + 1], order[a]
    in_order = all(all(b > a for a, b in itertools.pairwise(s)) for s in
                   [[s for k, s in order if k == i] for i in range(n)])
    return Stream(n, queue_size, slop, order, loops, in_order and loops == 1)
