"""Several nodes in one process: one rclpy context, a MultiThreadedExecutor spinning in a
background thread, and a clean shutdown (executor, nodes, context) however the run ends.

    with NodeGraph() as graph:
        camera = graph.add(SyntheticCamera(context=graph.context))
        depth = graph.add(DepthNode(context=graph.context))
        graph.wait_until(lambda: depth.counters["processed"] >= 10, timeout=30)

The caller must have applied the DDS policy (stereo_depth_ros.dds.configure_dds) first.
SIGINT/SIGTERM never shut the context down behind the graph's back (stereo_depth_ros.stopping
takes them when the program installed it); ``wait_until`` returns early on a stop request.

Shutdown order: the spin thread stops taking new work, the executor's thread pool finishes what
it took, then each node is destroyed (which joins its own threads), then the context. A
callback that raised is logged once and kept in ``errors``; it never ends the spin thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rclpy
import rclpy.logging
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from stereo_depth_ros import stopping

N = TypeVar("N", bound=Node)


class NodeGraph:
    def __init__(self, context: Context | None = None, args: list[str] | None = None,
                 num_threads: int | None = 4, single_threaded: bool = False) -> None:
        """``single_threaded``: one SingleThreadedExecutor, as a node executable spins (it takes
        large messages much faster than rclpy's MultiThreadedExecutor on a busy CPU)."""
        from rclpy.signals import SignalHandlerOptions

        self._own_context = context is None
        self.context = context or Context()
        if self._own_context:
            rclpy.init(args=args, context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.executor = (SingleThreadedExecutor(context=self.context) if single_threaded
                         else MultiThreadedExecutor(num_threads=num_threads, context=self.context))
        self.nodes: list[Node] = []
        self.errors: list[str] = []
        self._logger = rclpy.logging.get_logger("node_graph")
        self._thread: threading.Thread | None = None
        self._spinning = True
        self._closed = False

    def add(self, node: N) -> N:
        self.nodes.append(node)
        self.executor.add_node(node)
        self.start()
        return node

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._spin, name="node_graph_executor", daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, KeyboardInterrupt):
                return
            except Exception as exc:  # one failed callback must not stop every node of the graph
                self._callback_error(exc)

    def _callback_error(self, exc: BaseException) -> None:
        text = f"a callback raised {type(exc).__name__}: {exc}"
        self.errors.append(text)
        self._logger.error(text)

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02,
                   stoppable: bool = True) -> bool:
        """Poll ``predicate`` until it holds, ``timeout`` seconds pass or (``stoppable``) a stop
        is requested (SIGINT/SIGTERM); returns its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stoppable and stopping.requested()):
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._spinning = False
        if self._thread is not None:  # spin_once returns within its 0.1 s timeout
            self._thread.join(timeout=30.0)
            if self._thread.is_alive():
                self._logger.warning("the executor thread did not stop within 30 s; closing anyway")
        # rclpy's MultiThreadedExecutor.shutdown() destroys its guard condition before its thread
        # pool has run the callbacks already handed to it, and each then fails on that guard
        # (InvalidHandle): they finish first
        taken = list(getattr(self.executor, "_futures", ()))
        NodeGraph.wait_until(lambda: all(f.done() for f in taken), timeout=10.0, period=0.01,
                             stoppable=False)
        self.executor.shutdown(timeout_sec=10.0)
        for future in taken:  # their errors are said, once
            if future.done() and future.exception() is not None:
                self._callback_error(future.exception())
        for node in reversed(self.nodes):
            try:
                node.destroy_node()
            except Exception as exc:  # a node half-built or already destroyed must not block the rest
                self._logger.warning(f"destroying a node: {type(exc).__name__}: {exc}")
        if self._own_context and self.context.ok():
            rclpy.shutdown(context=self.context)

    def __enter__(self) -> NodeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
