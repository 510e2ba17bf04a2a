"""Soak-test bookkeeping: latency percentiles, resident memory, and the frame account.

No rclpy here; ``stereo_depth_ros.ros.soak_graph`` fills these from the running nodes.

The account of the depth node: every frame the camera published either came out
(``out``, received by the probe) or is booked under exactly one cause:
``lost_before_node`` (camera published, the node's left subscription never got it: DDS),
``unsynchronized`` (received, never paired), the node's refusal counters (``dropped_busy``,
``bad_*``, ...), ``in_flight`` (still queued when counting), ``lost_after_node`` (processed,
the probe never got the output). ``unaccounted`` is what the node's own counters cannot
explain: received - (paired + unsynchronized + waiting) and paired - (processed + refused +
in the worker). It must be 0.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of this process (or ``pid``) now (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    if not values:
        return {f"p{q:g}": float("nan") for q in qs} | {"max": float("nan"), "mean": float("nan")}
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}
    out["max"], out["mean"] = float(arr.max()), float(arr.mean())
    return out


@dataclass
class MemoryTrace:
    """RSS samples (seconds since start, bytes) of this process (or ``pid``) with a start mark
    and a post-warm-up mark."""

    samples: list[tuple[float, int]] = field(default_factory=list)
    warm_index: int | None = None
    pid: int | None = None
    _t0: float = field(default_factory=time.monotonic)

    def sample(self) -> int:
        rss = rss_bytes(self.pid)
        self.samples.append((time.monotonic() - self._t0, rss))
        return rss

    def mark_warm(self) -> None:
        if self.warm_index is None and self.samples:
            self.warm_index = len(self.samples) - 1

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        mib = 1024.0 * 1024.0
        start = self.samples[0][1]
        warm_i = self.warm_index if self.warm_index is not None else 0
        warm = self.samples[warm_i][1]
        end = self.samples[-1][1]
        tail = self.samples[warm_i:]
        slope = 0.0
        if len(tail) >= 3 and tail[-1][0] > tail[0][0]:
            t = np.array([s[0] for s in tail])
            r = np.array([s[1] for s in tail], dtype=np.float64)
            slope = float(np.polyfit(t, r, 1)[0]) * 60.0 / mib
        return {
            "rss_start_mib": start / mib, "rss_after_warmup_mib": warm / mib, "rss_end_mib": end / mib,
            "rss_max_mib": max(s[1] for s in self.samples) / mib,
            "growth_total_mib": (end - start) / mib, "growth_after_warmup_mib": (end - warm) / mib,
            "slope_after_warmup_mib_per_min": slope, "samples": len(self.samples),
        }


@dataclass
class FrameAccount:
    published: int
    received: int                  # left images the depth node's subscription got
    unsynchronized: int            # left images never paired
    waiting: int                   # left images still waiting for their set
    sets: int                      # synchronized sets emitted
    processed: int
    refused: dict[str, int]        # refusal counters of the depth node (per set)
    in_worker: int                 # sets queued or being processed
    out: int                       # outputs the probe received

    @property
    def lost_before_node(self) -> int:
        return self.published - self.received

    @property
    def lost_after_node(self) -> int:
        return self.processed - self.out

    @property
    def in_flight(self) -> int:
        return self.waiting + self.in_worker

    @property
    def unaccounted(self) -> int:
        return abs(self.received - (self.sets + self.unsynchronized + self.waiting)) + abs(
            self.sets - (self.processed + sum(self.refused.values()) + self.in_worker))

    def drops(self) -> dict[str, int]:
        """Every non-delivered frame by cause (zero causes left out)."""
        causes = {"lost_before_node (DDS)": self.lost_before_node, "unsynchronized": self.unsynchronized,
                  **self.refused, "in_flight_at_end": self.in_flight,
                  "lost_after_node (DDS)": self.lost_after_node}
        return {k: v for k, v in causes.items() if v}

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "out": self.out, "processed": self.processed,
                "received_by_node": self.received, "sets": self.sets, "drops": self.drops(),
                "unaccounted": self.unaccounted}


def format_report(report: dict[str, Any]) -> str:
    """The human summary the soak command prints."""
    a, lat, mem = report["depth"], report["latency_ms"], report["memory"]
    lines = [
        f"soak: {report['frames_requested']} frames at {report['rate_hz']:g} Hz, "
        f"{report['width']}x{report['height']}, backend {report['backend']}, "
        f"{report['duration_s']:.1f} s (camera achieved {report.get('sent_rate_hz', 0.0):.1f} Hz)",
        f"  depth node: in {a['published']}, out {a['out']} ({a['processed']} processed), "
        f"drops {a['drops'] or 'none'}, unaccounted {a['unaccounted']}",
        f"  latency stamp -> disparity received: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.1f} ms",
    ]
    n = report.get("nearest")
    if n:
        nl = report["nearest_latency_ms"]
        lines.append(f"  nearest-object node ({n['backend']}): in {n['in']}, out {n['out']}, "
                     f"drops {n['drops'] or 'none'}; latency p50 {nl['p50']:.1f} ms, p99 {nl['p99']:.1f} ms")
    lines.append(
        f"  memory (RSS): start {mem['rss_start_mib']:.1f} MiB, after warm-up "
        f"{mem['rss_after_warmup_mib']:.1f} MiB, end {mem['rss_end_mib']:.1f} MiB, "
        f"max {mem['rss_max_mib']:.1f} MiB; growth after warm-up "
        f"{mem['growth_after_warmup_mib']:+.1f} MiB ({mem['slope_after_warmup_mib_per_min']:+.2f} MiB/min)")
    lines.append(f"  exceptions: {len(report['exceptions'])}"
                 + (f" (first: {report['exceptions'][0]})" if report["exceptions"] else ""))
    verdict = "PASS" if report["ok"] else "FAIL: " + "; ".join(report["failures"])
    if report.get("stopped_by"):  # a stop request (SIGINT/SIGTERM) cut the run short
        verdict = (f"stopped by {report['stopped_by']} after {a['published']} of "
                   f"{report['frames_requested']} frames; "
                   + ("no failure in those" if report["ok"] else verdict))
    lines.append("  result: " + verdict)
    return "\n".join(lines)
