"""Signalling a program at a random moment and judging how it ended (test/test_signals.py).

A case starts the program as a user would (its own session, so the signal reaches it alone),
waits until a moment chosen at random (during start-up, or after it printed that it is up and
working), sends SIGINT and/or SIGTERM (one, or two in quick succession: ``timeout -s INT`` around
``ros2 launch`` delivers two), and reads everything it printed. A requested stop must end with
exit status 0, within a bounded time, with at most one line saying so, and with no traceback or
teardown error of any kind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

# What must never appear in the output of a program that was asked to stop.
FORBIDDEN = ("Traceback", "Exception ignored", "was never retrieved", "InvalidHandle",
             "ExternalShutdownException", "KeyboardInterrupt", "Exception in thread", "Failed to publish",
             "context is invalid", "Segmentation fault", "core dumped", "terminate called")
STOP_LINE = " received"  # "SIGINT received: shutting down", "SIGTERM received during start-up: ..."


@dataclass
class Target:
    """A program to signal: ``argv`` as a user types it, ``ready`` a text it prints once it is up
    and working (None: it prints nothing then; the running moment is a time after the start)."""

    name: str
    argv: list[str]
    ready: str | None
    ready_timeout: float = 120.0


@dataclass
class Case:
    moment: str            # "startup" (after spawn) or "running" (after ``ready``)
    signals: tuple[str, ...]
    delay: float           # seconds after the moment begins
    gap: float             # seconds between two signals

    def describe(self) -> str:
        return (f"{'+'.join(self.signals)} {self.delay:.2f} s into {self.moment}"
                + (f", {self.gap:.2f} s apart" if len(self.signals) > 1 else ""))


@dataclass
class Outcome:
    target: str
    case: Case
    returncode: int | None
    output: str
    reached_ready: bool
    stop_to_exit_s: float | None
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return (f"{self.target}: {self.case.describe()}: exit {self.returncode}, "
                f"{'; '.join(self.problems)}\n--- output (last 40 lines) ---\n{tail}")


def random_case(rng: random.Random, moment: str | None = None, startup_span: float = 4.0) -> Case:
    moment = moment or rng.choice(("startup", "running"))
    count = rng.choice((1, 2))
    signals = tuple(rng.choice(("SIGINT", "SIGTERM")) for _ in range(count))
    delay = rng.uniform(0.0, startup_span) if moment == "startup" else rng.uniform(0.0, 2.0)
    return Case(moment, signals, delay, rng.uniform(0.0, 0.4))


class _Reader:
    """Collects a pipe's output in the background (chunks, so a progress bar without newlines
    is seen too)."""

    def __init__(self, stream) -> None:
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk.decode(errors="replace"))

    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux /proc): the program's own code has
    taken the signals over. Before that the interpreter is still starting (0.2-0.3 s here, its
    site-packages included) and Python's defaults apply; start-up moments are counted from here."""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(line.split()[1] for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def run_case(target: Target, case: Case, env: dict[str, str], exit_timeout: float = 60.0) -> Outcome:
    """Run ``target``, signal it as ``case`` says, wait for it to end; judge the result."""
    proc = subprocess.Popen(target.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    reader = _Reader(proc.stdout)
    reached = False
    stop_at = None
    try:
        deadline = time.monotonic() + 30.0
        while case.moment == "startup" and not catches_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.002)
        if case.moment == "running":
            deadline = time.monotonic() + target.ready_timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if target.ready is None or target.ready in reader.text():
                    reached = True
                    break
                time.sleep(0.05)
        time.sleep(case.delay)
        for i, name in enumerate(case.signals):
            if i:
                time.sleep(case.gap)
            if proc.poll() is None:
                proc.send_signal(getattr(signal, name))
                stop_at = stop_at or time.monotonic()
        try:
            proc.wait(timeout=exit_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(5.0)
            out = Outcome(target.name, case, None, reader.text(), reached, None)
            out.problems.append(f"still running {exit_timeout:g} s after the signal: killed")
            return out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ended = time.monotonic()
    reader.join(5.0)
    out = Outcome(target.name, case, proc.returncode, reader.text(), reached,
                  None if stop_at is None else ended - stop_at)
    judge(out, target)
    return out


def judge(out: Outcome, target: Target) -> None:
    if out.case.moment == "running" and not out.reached_ready:
        out.problems.append(f"never printed {target.ready!r} (it was to be signalled while working)")
    if out.returncode != 0:
        out.problems.append(f"exit status {out.returncode}, expected 0 for a requested stop")
    for marker in FORBIDDEN:
        if marker in out.output:
            out.problems.append(f"printed {marker!r}")
    stops = sum(1 for line in out.output.splitlines() if STOP_LINE in line and "SIG" in line)
    if stops > 1:
        out.problems.append(f"said it was stopping {stops} times (once is enough)")
