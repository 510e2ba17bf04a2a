"""What the depth node and the nearest-object node share: one synchronizer over their inputs,
stale-stamp refusal, a latest-wins worker thread, counters with throttled logs, stall
reports and the /diagnostics status.

A subclass declares its parameters (``_declare``, ``_declare_sync_parameters``,
``_declare_output_parameters``), sets ``counters``, calls ``_synchronize`` and
``_start_worker``, and implements ``_handle``, ``_locked_summary`` and
``_diagnostic_values``. The class attributes below hold the texts and names that differ.
The subclass also declares ``input_reliability`` and ``stall_timeout`` (their descriptions
differ between the nodes), which this class reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from stereo_depth_ros.ros import input_checks as checks
from stereo_depth_ros.ros import parameters as params
from stereo_depth_ros.ros.compat import message_filters
from stereo_depth_ros.ros.conversions import stamp_ns
from stereo_depth_ros.ros.sync_monitor import SyncMonitor

RELIABILITY = ("best_effort", "reliable")


class WorkerNode(Node):
    # set by each subclass: the names and texts that differ between the nodes
    error_counter: str       # counts an unexpected exception escaping _handle
    set_name: str            # one synchronized set, in the stamp refusal logs
    newest_name: str         # "the newest <this> replaced one still waiting"
    no_sets: str             # "input stalled, <this>: ..." in /diagnostics
    stall_consequence: str   # "... silent for more than N s ...: <this> until it resumes"
    diagnostic_title: str    # the status name is "<node>: <this>"
    unpaired_message: str    # the status message when inputs arrive but none pair up
    not_problems: tuple[str, ...] = ("processed",)  # counters that are not skipped inputs

    counters: dict[str, int]
    monitor: SyncMonitor

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.last_error = ""
        self._lock = threading.Lock()
        self._log_times: dict[str, float] = {}
        self._stamps = checks.StampGuard()
        self._stalled_inputs: tuple[str, ...] = ()
        self._stall_began = 0.0
        self._pending: tuple[Any, ...] | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._busy = False
        self._worker_name = f"{node_name}_worker"
        self._worker: threading.Thread | None = None
        self._serve_requests_as_one()

    # ---- parameters ----
    def _or_destroy(self, build: Callable[[], Any]) -> Any:
        """``build()``; if it raises (a parameter or backend that cannot start), the half-built
        node is destroyed first, so nothing of it stays in the context."""
        try:
            return build()
        except BaseException:
            self.destroy_node()
            raise

    def _declare(self, name: str, default: Any, description: str, rng: tuple | None = None,
                 read_only: bool = False, choices: Sequence[str] = ()) -> None:
        """Declare a parameter; ``rng`` is (from, to[, step]) for int and (from, to) for float,
        ``choices`` the strings it takes. A start-up value that breaks them raises
        ParameterError (one line: the name, the value, the rule)."""
        d = ParameterDescriptor(description=description, read_only=read_only)
        if rng is not None and isinstance(default, int) and not isinstance(default, bool):
            step = rng[2] if len(rng) > 2 else 1
            d.integer_range = [IntegerRange(from_value=rng[0], to_value=rng[1], step=step)]
        elif rng is not None and isinstance(default, float):
            d.floating_point_range = [FloatingPointRange(from_value=rng[0], to_value=rng[1])]
        if choices:
            d.additional_constraints = f"one of {', '.join(choices)}"
        try:
            value = self.declare_parameter(name, default, d).value
        except params.DECLARE_ERRORS as exc:
            raise params.declare_error(name, default, rng, exc) from None
        if choices:
            params.check_choice(name, value, choices)

    def _serve_requests_as_one(self) -> None:
        """rclpy's set_parameters service sets each parameter of a request on its own, so
        backend:=learned + model:=X fails on the old model while X is kept. Here a request is
        applied as set_parameters_atomically applies it: all of it, or none of it."""
        name = f"{self.get_fully_qualified_name()}/set_parameters"
        for service in self.services:
            if service.service_name == name:
                service.callback = self._set_parameters_as_one

    def _set_parameters_as_one(self, request: SetParameters.Request,
                               response: SetParameters.Response) -> SetParameters.Response:
        parameters = [Parameter.from_parameter_msg(p) for p in request.parameters]
        try:
            result = self.set_parameters_atomically(parameters)
        except ParameterNotDeclaredException as exc:
            result = SetParametersResult(successful=False, reason=str(exc))
        reason = result.reason
        if not result.successful and len(parameters) > 1:
            reason = f"none of the {len(parameters)} parameters applied: {reason}"
        response.results = [SetParametersResult(successful=result.successful, reason=reason)
                            for _ in parameters]
        return response

    def _declare_sync_parameters(self) -> None:
        self._declare("approximate_sync", False, "Pair inputs by approximate time (stamps within slop)",
                      read_only=True)
        self._declare("queue_size", 5, "Synchronizer queue size per input", (1, 1000, 1), read_only=True)
        self._declare("slop", 0.05, "Approximate sync: largest stamp difference in a set, seconds",
                      (0.0, 10.0), read_only=True)
        self._declare("future_stamp_tolerance", 10.0, "Refuse (count, log) sets stamped more than this "
                      "many seconds ahead of the node's clock; 0 = accept any stamp. Sets stamped 0 are "
                      "always refused", (0.0, 1e9))

    def _declare_output_parameters(self) -> None:
        self._declare("output_reliability", "reliable", "Output QoS reliability: reliable or best_effort",
                      read_only=True, choices=RELIABILITY)
        self._declare("output_depth", 1, "Output QoS history depth", (1, 100, 1), read_only=True)
        self._declare("diagnostics_period", 1.0, "Seconds between /diagnostics messages", (0.05, 60.0),
                      read_only=True)

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _output_qos(self) -> QoSProfile:
        qos = QoSProfile(depth=max(int(self._param("output_depth")), 1))
        qos.reliability = (ReliabilityPolicy.BEST_EFFORT if self._param("output_reliability") == "best_effort"
                           else ReliabilityPolicy.RELIABLE)
        return qos

    # ---- input ----
    def _synchronize(self, inputs: Sequence[str], types: Sequence[type]) -> int:
        """Subscribe to ``inputs`` through one synchronizer calling ``_on_set``; the queue size."""
        p = self._param
        in_qos = (qos_profile_sensor_data if p("input_reliability") == "best_effort"
                  else QoSProfile(depth=max(int(p("queue_size")), 1)))
        queue_size = int(p("queue_size"))
        self.monitor = SyncMonitor(inputs, queue_size)
        self._subs = [message_filters.Subscriber(self, t, name, qos_profile=in_qos)
                      for t, name in zip(types, inputs, strict=True)]
        for i, sub in enumerate(self._subs):  # before the synchronizer: seen precedes matched
            sub.registerCallback(self._make_seen(i))
        if p("approximate_sync"):
            self._sync = message_filters.ApproximateTimeSynchronizer(self._subs, queue_size, float(p("slop")))
        else:
            self._sync = message_filters.TimeSynchronizer(self._subs, queue_size)
        self._sync.registerCallback(self._on_set)
        if hasattr(self._sync, "registerRefusalCallback"):  # the package's: stale stamps never pair
            self._sync.registerRefusalCallback(self._on_refused)
        return queue_size

    def _make_seen(self, index: int) -> Callable[[Any], None]:
        def seen(msg: Any) -> None:
            self.monitor.seen(index, stamp_ns(msg), msg)
        return seen

    def _on_refused(self, cause: str, index: int, stamp: int, msg: Any) -> None:
        """The package's synchronizer refused a repeated or older stamp before any set formed:
        counted as _on_set counts such sets, by the set's first input (the others' refused
        messages show as unsynchronized)."""
        if index != 0 or cause not in ("duplicate", "out_of_order", "late"):
            return
        self.monitor.refused(index, stamp, msg)  # counted below, by its cause
        last = self._stamps.last_ns
        if last is not None and stamp <= last:  # worded as _on_set words a stale set
            repeat = stamp == last
            what = "repeats" if repeat else f"is {(last - stamp) / 1e6:.1f} ms older than"
            than = "the last accepted one"
        else:
            repeat = cause == "duplicate"
            what, than = "repeats" if repeat else "is older than", f"the last {self.monitor.names[0]}"
        self._count("duplicate_stamp" if repeat else "out_of_order",
                    f"{self.set_name} stamped {stamp / 1e9:.9f} s {what} {than}: its outputs would be stale")

    def _on_set(self, *msgs: Any) -> None:
        """Refuse a set whose first message's stamp repeats or goes back; else it replaces the
        one waiting for the worker."""
        self.monitor.matched([stamp_ns(m) for m in msgs], msgs)
        stamp = stamp_ns(msgs[0])
        absurd = self._absurd_stamp(stamp)
        if absurd:
            self._count(*absurd)
            return
        verdict = self._stamps.check(stamp)
        if verdict in ("duplicate", "out_of_order"):
            last = self._stamps.last_ns or 0
            what = "repeats" if verdict == "duplicate" else f"is {(last - stamp) / 1e6:.1f} ms older than"
            self._count("duplicate_stamp" if verdict == "duplicate" else "out_of_order",
                        f"{self.set_name} stamped {stamp / 1e9:.9f} s {what} the last accepted one: its "
                        "outputs would be stale")
            return
        if verdict == "reset":
            self._count("time_reset", f"time went back to {stamp / 1e9:.9f} s (bag loop or clock "
                        "restart): accepted, ordering starts again", level="warn", skipped=False)
        with self._wake:
            if self._pending is not None:
                self._count("dropped_busy", f"processing is slower than the input: the newest "
                            f"{self.newest_name} replaced one still waiting", level="warn")
            self._pending = (msgs, time.perf_counter())
            self._wake.notify()

    def _absurd_stamp(self, stamp: int) -> tuple[str, str] | None:
        """(counter, message) for a set no consumer could place in time: stamped 0 (a driver
        that does not stamp), or further ahead of this node's clock than future_stamp_tolerance
        (clocks not synchronized, use_sim_time on one side only). Refused, not published."""
        if stamp == 0:
            return "zero_stamp", (f"{self.set_name} stamped 0: the driver does not stamp its messages, "
                                  "and outputs without a time cannot be used with TF or a synchronizer")
        tolerance = float(self._param("future_stamp_tolerance"))
        now = self.get_clock().now().nanoseconds
        if tolerance > 0 and now > 0 and stamp - now > tolerance * 1e9:
            return "future_stamp", (
                f"{self.set_name} stamped {stamp / 1e9:.3f} s is {(stamp - now) / 1e9:.1f} s ahead of this "
                f"node's clock (tolerance {tolerance:g} s): are the clocks synchronized (NTP, chrony), and "
                "use_sim_time set alike on the source and this node?")
        return None

    # ---- worker ----
    def _start_worker(self) -> None:
        """Start the worker, and /diagnostics (publisher and timer)."""
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._worker = threading.Thread(target=self._work, name=self._worker_name, daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(float(self._param("diagnostics_period")),
                                             self._publish_diagnostics)

    def _handle(self, msgs: tuple[Any, ...], queued_at: float) -> None:
        """Process one set (``queued_at``: time.perf_counter() when it was queued)."""
        raise NotImplementedError

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait(0.5)
                if self._shutting_down():
                    return
                item, self._pending = self._pending, None
                self._busy = True
            try:
                self._handle(*item)
            except Exception as exc:  # never let the worker die
                if self._shutting_down():
                    return  # Ctrl-C / SIGTERM invalidated the context under this frame: not an error
                self._count(self.error_counter, f"unexpected error: {exc!r}")
            finally:
                with self._wake:
                    self._busy = False

    def _shutting_down(self) -> bool:
        """The node is being destroyed or its context was shut down (signal): publishers and
        the rosout logger no longer work, so the worker stops without a word."""
        return self._stop or not self.context.ok()

    def destroy_node(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        worker = self._worker
        if worker is not None and worker.is_alive() and threading.current_thread() is not worker:
            worker.join(timeout=10.0)
        super().destroy_node()

    # ---- reporting ----
    def _count(self, cause: str, message: str, level: str = "error", skipped: bool = True) -> bool:
        """Count ``cause``, keep the message for diagnostics, log it at most every 2 s per cause."""
        with self._lock:
            self.counters[cause] += 1
            count = self.counters[cause]
            self.last_error = f"{cause}: {message}"
            now = time.monotonic()
            due = now - self._log_times.get(cause, -1e9) >= 2.0
            if due:
                self._log_times[cause] = now
        if due:
            self._emit(level, f"{message} [{cause}: {count} so far]" + ("; frame skipped" if skipped else ""))
        return False

    def _emit(self, level: str, text: str) -> None:
        if not self.context.ok():  # shutting down: the rosout publisher is gone
            return
        # one call site per severity: rclpy refuses a severity change at a call site
        if level == "warn":
            self.get_logger().warning(text)
        else:
            self.get_logger().error(text)

    def status_summary(self) -> dict[str, Any]:
        """Counters, input and timing figures, as plain values (see ``_locked_summary``)."""
        unsync = self.monitor.unsynchronized
        with self._lock:
            self.counters["unsynchronized"] = unsync
            return self._locked_summary()

    def _locked_summary(self) -> dict[str, Any]:
        """The node's status_summary, built while ``_lock`` is held; must include ``counters``,
        ``backend``, ``device``, ``last_error`` and ``_input_status()``."""
        raise NotImplementedError

    def _input_status(self) -> dict[str, Any]:
        """The synchronizer's side of status_summary: per input counts, sets, stalls."""
        return {"inputs": {k: {"received": r, "unsynchronized": u}
                           for k, (r, u) in self.monitor.per_input().items()},
                "synchronized_sets": self.monitor.sets, "stalled": self.monitor.stalled(),
                "silent_inputs": self.monitor.silent_inputs(float(self._param("stall_timeout")))}

    def _diagnostic_values(self, summary: dict[str, Any]) -> dict[str, str]:
        raise NotImplementedError

    def _publish_diagnostics(self) -> tuple[dict[str, int], int]:
        """Publish the status; the counters it reports and how many of them are problems."""
        self._note_stall(self.monitor.silent_inputs(float(self._param("stall_timeout"))))
        s = self.status_summary()
        c = s["counters"]
        problems = sum(v for k, v in c.items() if k not in self.not_problems)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: {self.diagnostic_title}",
                                  hardware_id=f"{s['backend']}@{s['device']}")
        silent = s["silent_inputs"]
        if silent:
            status.level = DiagnosticStatus.WARN
            status.message = f"input stalled, {self.no_sets}: " + "; ".join(
                f"{k} silent {'since start' if age is None else f'for {age:.1f} s'}"
                for k, age in silent.items()) + " while the other inputs arrive"
        elif s["stalled"]:
            status.level = DiagnosticStatus.WARN
            status.message = self.unpaired_message
            self._count_stall(status.message)
        elif problems:
            status.level = DiagnosticStatus.WARN
            status.message = f"{c['processed']} processed, {problems} inputs skipped ({s['last_error']})"
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"{c['processed']} processed"
        status.values = [KeyValue(key=k, value=v) for k, v in self._diagnostic_values(s).items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(msg)
        return c, problems

    def _count_stall(self, message: str) -> None:
        """Called at each status while inputs arrive but none pair up (``message`` says so)."""

    def _note_stall(self, silent: dict[str, float | None]) -> None:
        """Count each stall once when it begins, log its start and its end. A stall ends when a
        silent input is heard again, not when the others fall quiet too (a paused source)."""
        names = tuple(silent)
        if names and not self._stalled_inputs:
            self._stall_began = time.monotonic()
            self._count("input_stall", f"{', '.join(names)} silent for more than "
                        f"{float(self._param('stall_timeout')):g} s while the other inputs arrive: "
                        f"{self.stall_consequence} until it resumes", level="warn", skipped=False)
        elif not names and self._stalled_inputs:
            if not self.monitor.heard_since(self._stalled_inputs, self._stall_began):
                return
            self.get_logger().info(f"{', '.join(self._stalled_inputs)} resumed: pairing again")
        self._stalled_inputs = names
