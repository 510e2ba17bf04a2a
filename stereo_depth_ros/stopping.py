"""A stop request from SIGINT or SIGTERM, for the node executables and the long-running commands.

``install()`` replaces Python's SIGINT behaviour (KeyboardInterrupt, raised wherever the main
thread happens to be: inside an import, a ``finally`` block, rclpy's teardown) and SIGTERM's
(immediate death) with a flag. The program's own loop sees ``requested()``, stops its work in
order and exits 0. Any number of further signals only repeat the request: a second Ctrl-C, or
``timeout -s INT`` plus ``ros2 launch`` each sending one, cannot interrupt the shutdown.

The handler only assigns module globals: it runs between two bytecodes of the main thread, so
it must not take a lock (the main thread may hold it) or write to a stream (the main thread may
be writing to it). The program logs the stop itself, once.

No rclpy here: the entry points install this before importing anything heavy.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_signal_name: str | None = None
_count = 0
_installed = False


def _handler(signum: int, _frame: object) -> None:
    global _signal_name, _count
    if _signal_name is None:
        _signal_name = signal.Signals(signum).name
    _count += 1


def install() -> bool:
    """Make SIGINT and SIGTERM request a stop. Only the main thread can install signal handlers:
    elsewhere (a test calling a command in a thread) this does nothing and returns False."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in SIGNALS:
        signal.signal(sig, _handler)
    _installed = True
    return True


@contextmanager
def handling(restore: bool = True) -> Iterator[None]:
    """``install()`` for the duration of the block; with ``restore`` the previous handlers come
    back and the request is forgotten afterwards (a command called in-process, e.g. by a test,
    must not leave the caller deaf to Ctrl-C)."""
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS} if main else {}
    install()
    try:
        yield
    finally:
        if restore and main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reset()


def finishing() -> None:
    """For a program's last moments, its work done and its nodes gone:

    - SIGINT/SIGTERM are ignored from here on. Python's finalization puts back the default
      action of every signal with a Python handler (death by the signal, exit status -2 or -15)
      but leaves ignored ones ignored, and a second signal often lands right then.
    - the objects alive now are frozen out of the garbage collector: the interpreter's last
      collections over torch's and rclpy's module graphs took 1.5 to 6 s on a loaded machine,
      longer than ``ros2 launch`` waits before it escalates to SIGTERM and SIGKILL (5 s).
    """
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    gc.freeze()


def installed() -> bool:
    return _installed and signal.getsignal(signal.SIGINT) is _handler


def request(reason: str = "stop requested") -> None:
    """Ask for a stop from the program itself (as a signal would)."""
    global _signal_name, _count
    if _signal_name is None:
        _signal_name = reason
    _count += 1


def requested() -> bool:
    return _signal_name is not None


def reason() -> str | None:
    """The first signal's name (``SIGINT``, ``SIGTERM``) or the reason given to ``request``."""
    return _signal_name


def signals_received() -> int:
    return _count


def sleep(seconds: float, step: float = 0.05) -> bool:
    """Sleep up to ``seconds``, returning early (True) as soon as a stop is requested."""
    deadline = time.monotonic() + seconds
    while not requested():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step, left))
    return True


def reset() -> None:
    """Forget a stop request (tests, or a program that handled one and goes on)."""
    global _signal_name, _count
    _signal_name = None
    _count = 0
