"""rclpy without its signal handling: the process's own stop request (stereo_depth_ros.stopping)
ends the spin, and the program then takes its nodes down in order.

rclpy's handlers shut the context down from a signal thread the moment SIGINT or SIGTERM
arrives, while worker threads may still be publishing ("publisher's context is invalid") and
the main thread is still inside the executor (ExternalShutdownException), and SIGINT also
raises KeyboardInterrupt wherever the main thread is. Here a signal only sets the stop flag;
the spin loop sees it within ``period`` seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.signals import SignalHandlerOptions

from stereo_depth_ros import stopping


def init(args: list[str] | None = None, context: Context | None = None) -> None:
    """``rclpy.init`` without rclpy's signal handlers: the program has installed
    stereo_depth_ros.stopping (a program's main, never a library call, owns the signals)."""
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


def stop_message() -> str:
    """The one line a program logs when it stops on request."""
    return f"{stopping.reason()} received: shutting down"


def spin_until_stopped(executor: Executor, logger: Any, done: Callable[[], bool] = lambda: False,
                       period: float = 0.1) -> str:
    """Spin until ``done()``, a stop request or the context's shutdown; returns which ("done",
    "stopped", "shutdown"). A callback that raises is logged in one line and the spin goes on:
    one bad message must not end a node."""
    while True:
        if stopping.requested():
            logger.info(stop_message())
            return "stopped"
        if done():
            return "done"
        if not executor.context.ok():
            return "shutdown"
        try:
            executor.spin_once(timeout_sec=period)
        except ExternalShutdownException:
            return "shutdown"
        except Exception as exc:  # a bug in a callback: said once per occurrence, never a traceback
            logger.error(f"a callback raised {type(exc).__name__}: {exc}")


def say(program: str, text: str) -> None:
    """One line on stderr, for when no node (and so no logger) exists yet or any more."""
    print(f"{program}: {text}", file=sys.stderr, flush=True)
