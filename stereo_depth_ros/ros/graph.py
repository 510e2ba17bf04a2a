"""Several nodes in one process: one rclpy context, a MultiThreadedExecutor spinning in a
background thread, and a clean shutdown (executor, nodes, context) however the run ends.

    with NodeGraph() as graph:
        camera = graph.add(SyntheticCamera(context=graph.context))
        depth = graph.add(DepthNode(context=graph.context))
        graph.wait_until(lambda: depth.counters["processed"] >= 10, timeout=30)

The caller must have applied the DDS policy (stereo_depth_ros.dds.configure_dds) first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

N = TypeVar("N", bound=Node)


class NodeGraph:
    def __init__(self, context: Context | None = None, args: list[str] | None = None,
                 num_threads: int | None = 4, single_threaded: bool = False) -> None:
        """``single_threaded``: one SingleThreadedExecutor, as a node executable spins (it takes
        large messages much faster than rclpy's MultiThreadedExecutor on a busy CPU)."""
        self._own_context = context is None
        self.context = context or Context()
        if self._own_context:
            rclpy.init(args=args, context=self.context)
        self.executor = (SingleThreadedExecutor(context=self.context) if single_threaded
                         else MultiThreadedExecutor(num_threads=num_threads, context=self.context))
        self.nodes: list[Node] = []
        self._thread: threading.Thread | None = None
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
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown(timeout_sec=5.0)
        if self._thread is not None:  # no callback may run while the nodes are destroyed
            self._thread.join(timeout=5.0)
        for node in reversed(self.nodes):
            try:
                node.destroy_node()
            except Exception:  # a node half-built or already destroyed must not block the rest
                pass
        if self._own_context and self.context.ok():
            rclpy.shutdown(context=self.context)

    def __enter__(self) -> NodeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
