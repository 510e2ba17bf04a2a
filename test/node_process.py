"""A node executable running in its own process, as `ros2 run` starts it, and the means to talk
to it from the test over real DDS: its output lines, its /diagnostics counters and its
parameter services.

    with NodeProcess("stereo_depth_ros.ros.depth_node", "/ns", {"backend": "sgbm"}) as node:
        node.wait_for_line("backend sgbm on")
        probe = graph.add(SomeHarness("ns", graph.context))
        ...
        node.counters(graph)        # the latest /diagnostics values of that node
        node.set_parameters(graph, probe, {"backend": "learned", "model": "x"})

The process inherits the test's DDS policy (loopback profile, ROS_DOMAIN_ID: see conftest.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Exception ignored", "Failed to publish")


def ros_value(value: Any) -> str:
    """A Python value as `-p name:=value` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class NodeProcess:
    """``python -m MODULE --ros-args -r __ns:=NS -p k:=v ...`` with its output (stdout and
    stderr together) collected line by line in a thread."""

    def __init__(self, module: str, namespace: str, params: dict[str, Any] | None = None,
                 node_name: str | None = None, env: dict[str, str] | None = None) -> None:
        self.namespace = namespace
        self.node_name = node_name or module.rsplit(".", 1)[-1]
        self.fqn = f"{namespace.rstrip('/')}/{self.node_name}"
        args = [a for k, v in (params or {}).items() for a in ("-p", f"{k}:={ros_value(v)}")]
        self.cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}", *args]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.diagnostics: list[dict[str, str]] = []
        self.statuses: list[Any] = []

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 90.0, start: int = 0) -> str:
        """The first output line from index ``start`` on that matches the regex ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f} s "
                                         f"(exit {self.proc.poll()}):\n{self.output_unlocked()}")
                self._cond.wait(min(left, 0.2))

    def output_unlocked(self) -> str:
        return "\n".join(self.lines)

    def mark(self) -> int:
        """Index of the next output line (for wait_for_line(start=...))."""
        with self._cond:
            return len(self.lines)

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"process did not exit in {timeout} s:\n{self.output}") from None
        self._reader.join(timeout=10)
        return rc

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)

    # ---- over DDS, through a node of the test's graph ----
    def watch_diagnostics(self, node: Any) -> None:
        """Keep this process's /diagnostics values (``node``: any node of the test's graph)."""
        def cb(msg: DiagnosticArray) -> None:
            for s in msg.status:
                if s.name.startswith(self.fqn + ":"):
                    self.statuses.append(s)
                    self.diagnostics.append({kv.key: kv.value for kv in s.values})
        node.create_subscription(DiagnosticArray, "/diagnostics", cb, 10)

    def counter(self, name: str) -> int:
        """The counter's value in the latest /diagnostics status (-1 before the first)."""
        return int(self.diagnostics[-1].get(name, -1)) if self.diagnostics else -1

    def wait_counter(self, graph: Any, name: str, value: int, timeout: float = 30.0) -> None:
        """Until /diagnostics reports ``name`` >= ``value``."""
        assert graph.wait_until(lambda: self.counter(name) >= value, timeout), \
            f"{name} = {self.counter(name)}, expected {value}; last: {self.diagnostics[-1:]}\n{self.output}"

    def _call(self, graph: Any, node: Any, srv_type: Any, service: str, request: Any,
              timeout: float = 60.0) -> Any:
        client = node.create_client(srv_type, f"{self.fqn}/{service}")
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"{self.fqn}/{service} not offered"
            future = client.call_async(request)
            assert graph.wait_until(future.done, timeout), f"no reply from {service}"
            return future.result()
        finally:
            node.destroy_client(client)

    def set_parameters(self, graph: Any, node: Any, values: dict[str, Any]) -> list[Any]:
        """One set_parameters request (as `ros2 param load` sends): the per-parameter results."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return list(self._call(graph, node, SetParameters, "set_parameters", request).results)

    def get_parameters(self, graph: Any, node: Any, *names: str) -> dict[str, Any]:
        request = GetParameters.Request(names=list(names))
        reply = self._call(graph, node, GetParameters, "get_parameters", request)
        return {n: Parameter.from_parameter_msg(ParameterMsg(name=n, value=v)).value
                for n, v in zip(names, reply.values, strict=True)}


def assert_no_traceback(output: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in output, output
