"""Chaos-run bookkeeping (``stereo-depth chaos``; no rclpy): what a bag replayed in a loop at
several rates into a running ``stereo-depth run`` must show.

- It keeps processing after every loop: every node's output goes on within ``grace_s`` of each
  new pass over the bag (the synchronizer crash of issue 12 stopped the graph after the first
  loop). For the depth node also: the outputs' stamps go back each time the bag starts again, so
  its output stream falls into runs of rising stamps ("epochs"), one per loop that produced
  anything; fewer than ``min_epochs`` of the loops played without a gap means loops come out
  empty systematically. (On a starved machine a fast pass can come out empty, every frame of it
  lost between the processes or dropped while busy: counted, so not a failure by itself.) The
  nearest-object node may be slower than a fast pass, so only the first check applies to it.
- Every frame is accounted for, from the depth node's own /diagnostics: the left images it
  received = processed + refused by cause + never paired + in flight. The ones published but
  never received are lost between the processes (DDS), the ones processed but never received by
  the probe were lost after the node; both are named.
- A camera that stops and comes back: the node reports the stall of one camera (its
  ``input_stall`` counter) and processes again when it is back (the checks above).
- Memory stays flat: the graph process's RSS after warm-up.
- The graph process stops cleanly on SIGINT at the end: exit 0, no traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What a clean run never prints (tracebacks, teardown errors of rclpy and of the interpreter).
TRACEBACK_MARKERS = ("Traceback", "Exception ignored", "was never retrieved", "InvalidHandle",
                     "ExternalShutdownException", "KeyboardInterrupt", "Exception in thread",
                     "Failed to publish", "context is invalid", "Segmentation fault", "core dumped",
                     "terminate called")
LEFT = "left/image_rect"


@dataclass
class DiagnosticAccount:
    """The depth node's frame account as its /diagnostics report it, plus both ends outside it."""

    published: int                 # left images the replay published
    received: int                  # left images the node's subscription got
    unsynchronized: int            # left images never paired
    processed: int
    refused: dict[str, int]        # synchronized sets refused, by cause
    in_flight: int                 # waiting for their set, queued or being processed
    out: int                       # disparity images the probe received

    @property
    def unaccounted(self) -> int:
        return self.received - (self.processed + sum(self.refused.values()) + self.unsynchronized
                                + self.in_flight)

    def drops(self) -> dict[str, int]:
        causes = {"lost between processes (DDS)": self.published - self.received,
                  "unsynchronized": self.unsynchronized, **self.refused, "in_flight_at_end": self.in_flight,
                  "lost after the node (DDS)": self.processed - self.out}
        return {k: v for k, v in causes.items() if v}

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "received_by_node": self.received, "processed": self.processed,
                "out": self.out, "drops": self.drops(), "unaccounted": self.unaccounted}


def account_from_status(values: Mapping[str, str], refusals: Sequence[str], published: int,
                        out: int) -> DiagnosticAccount:
    """``values``: the key/values of the depth node's last DiagnosticStatus."""
    def num(key: str) -> int:
        return int(values.get(key, "0") or 0)

    return DiagnosticAccount(
        published=published, received=num(f"received {LEFT}"), unsynchronized=num(f"unsynchronized {LEFT}"),
        processed=num("processed"), refused={k: num(k) for k in refusals if num(k)},
        in_flight=num("in_flight"), out=out)


def epochs(stamps: Sequence[int]) -> int:
    """Runs of rising stamps in an output stream (a new one each time a stamp goes back)."""
    if not stamps:
        return 0
    return 1 + sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b < a)


def _overlaps(a: float, b: float, gaps: Sequence[tuple[float, float]]) -> bool:
    return any(a < g1 and b > g0 for g0, g1 in gaps)


def silent_after(loop_starts: Sequence[float], times: Sequence[float], grace_s: float, end: float,
                 gaps: Sequence[tuple[float, float]] = ()) -> list[int]:
    """Passes over the bag (after the first; with ``grace_s`` of playing, none of it silenced by
    a ``gap``, after their start) after whose start no output came within ``grace_s``."""
    return [k for k, start in enumerate(loop_starts) if k and start + grace_s <= end
            and not _overlaps(start, start + grace_s, gaps)
            and not any(start <= t <= start + grace_s for t in times)]


def clean_passes(loop_starts: Sequence[float], gaps: Sequence[tuple[float, float]]) -> int:
    """Completed passes (all but the last started) that no gap silenced, even in part."""
    bounds = list(loop_starts)
    return sum(1 for a, b in zip(bounds, bounds[1:], strict=False) if not _overlaps(a, b, gaps))


def per_loop(loop_starts: Sequence[float], times: Sequence[float], end: float) -> list[int]:
    """Outputs received during each pass over the bag (by arrival time; a frame of one pass may
    arrive early in the next)."""
    bounds = list(loop_starts) + [end]
    return [sum(1 for t in times if a <= t < b) for a, b in zip(bounds, bounds[1:], strict=False)]


def failures(report: Mapping[str, Any], max_growth_mib: float, min_epochs: float = 0.5) -> list[str]:
    """What went wrong in a chaos run report (empty: it passed)."""
    out = []
    proc = report["graph_process"]
    if proc["exit_status"] != 0:
        out.append(f"the graph process ended with exit status {proc['exit_status']} on SIGINT")
    if proc["tracebacks"]:
        out.append(f"the graph process printed {', '.join(proc['tracebacks'])}")
    if proc["died_early"]:
        out.append("the graph process died while the bag was playing")
    loops = report["loops"]
    for name, stream in report["outputs"].items():
        if stream["silent_after_loops"]:
            out.append(f"{name}: no output within {loops['grace_s']:g} s after the start of pass(es) "
                       f"{stream['silent_after_loops'][:10]} (processing stopped)")
    disparity = report["outputs"]["disparity"]
    if disparity["epochs"] < min_epochs * loops["clean"]:
        out.append(f"disparity: output in {disparity['epochs']} loops of the {loops['clean']} completed "
                   f"without a gap (less than {100 * min_epochs:.0f} %: loops come out empty)")
    account = report["depth"]
    if account is None:
        out.append("no /diagnostics from the depth node: its frame account is unknown")
    elif account["unaccounted"]:
        out.append(f"{account['unaccounted']} frame(s) unaccounted for in the depth node")
    if "right camera" in loops.get("gaps", ()) and report["depth_counters"] and not int(
            report["depth_counters"].get("input_stall", "0") or 0):
        out.append(f"the right camera stopped for {loops['gap_s']:g} s and the depth node did not report "
                   "a stall")
    for node, counter in (("depth_counters", "backend_error"), ("nearest_counters", "error")):
        if int(report.get(node, {}).get(counter, "0") or 0):
            out.append(f"{node.split('_')[0]} node: {report[node][counter]} unexpected error(s)")
    mem = report["memory"]
    if mem and mem["growth_after_warmup_mib"] > max_growth_mib:
        out.append(f"memory grew {mem['growth_after_warmup_mib']:.1f} MiB after warm-up "
                   f"(limit {max_growth_mib:g} MiB)")
    return out


def format_report(report: Mapping[str, Any]) -> str:
    loops, mem, a = report["loops"], report["memory"], report["depth"]
    lines = [f"chaos: {report['layout']} bag ({report['frames_per_loop']} frames {report['size']}) into "
             f"`stereo-depth {' '.join(report['graph_args'])}`, {report['duration_s']:.0f} s",
             f"  loops: {loops['completed']} completed at rates {loops['rates']}, silent "
             f"{loops['gap_s']:g} s between them: {', '.join(loops['gaps']) or 'never'} (outputs per loop: "
             f"{loops['disparity_per_loop']})"]
    for name, stream in report["outputs"].items():
        lines.append(f"  {name}: {stream['count']} outputs in {stream['epochs']} epochs")
    if a is not None:
        lines.append(f"  depth node: published {a['published']}, received {a['received_by_node']}, processed "
                     f"{a['processed']}, out {a['out']}; drops {a['drops'] or 'none'}; unaccounted "
                     f"{a['unaccounted']}; input stalls reported "
                     f"{report['depth_counters'].get('input_stall', '?')}")
    if mem:
        lines.append(f"  memory (RSS of the graph process): after warm-up {mem['rss_after_warmup_mib']:.1f} "
                     f"MiB, end {mem['rss_end_mib']:.1f} MiB, growth after warm-up "
                     f"{mem['growth_after_warmup_mib']:+.1f} MiB "
                     f"({mem['slope_after_warmup_mib_per_min']:+.2f} MiB/min)")
    proc = report["graph_process"]
    said = "no traceback" if not proc["tracebacks"] else "printed " + ", ".join(proc["tracebacks"])
    lines.append(f"  graph process: exit {proc['exit_status']} on SIGINT, {said}")
    verdict = "PASS" if not report["failures"] else "FAIL: " + "; ".join(report["failures"])
    if report.get("stopped_by"):
        verdict = f"stopped by {report['stopped_by']}; " + verdict
    lines.append("  result: " + verdict)
    return "\n".join(lines)
