"""``stereo-depth dds-bench``: how many large stereo pairs reach the depth node across processes
over DDS (its default best-effort input), and how many of its outputs reach a subscriber.
Prints figures; see stereo_depth_ros.ros.dds_bench for what each stage does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GOAL = 0.99


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=1280, help="image width (default 1280)")
    parser.add_argument("--height", type=int, default=720, help="image height (default 720)")
    parser.add_argument("--rate", type=float, default=30.0, help="sets per second (default 30)")
    parser.add_argument("--frames", type=int, default=300, help="sets per stage (default 300)")
    parser.add_argument("--stages", default="inputs,node,outputs",
                        help="inputs (pairs into a plain subscriber process), node (pairs into a "
                             "depth_node process, its outputs back), outputs (output-sized messages at "
                             "--rate from another process); default all three")
    parser.add_argument("--backend", default="sgbm", help="the depth node's backend (default sgbm)")
    parser.add_argument("--publisher-reliability", choices=("reliable", "best_effort"), default="reliable",
                        help="QoS of the stereo pair's publisher, like a camera driver's (default reliable)")
    parser.add_argument("--input-reliability", choices=("best_effort", "reliable"), default="best_effort",
                        help="the depth node's input_reliability (default: its default, best_effort)")
    parser.add_argument("--subscriber-reliability", choices=("reliable", "best_effort"), default="reliable",
                        help="QoS of the outputs' subscriber (default reliable, as RViz)")
    parser.add_argument("--json", default="", help="also write the figures here")
    parser.add_argument("--dds", default="auto", choices=("auto", "loopback", "system"),
                        help="DDS policy (default auto: loopback unless a ROS install or profile is set)")


def _pct(n: int, of: int) -> str:
    return f"{n}/{of} ({100.0 * n / of:.1f} %)" if of else f"{n}/0"


def _met(n: int, of: int) -> bool:
    return of > 0 and n >= GOAL * of


def format_report(report: dict[str, Any]) -> tuple[str, bool]:
    """The printed figures, and whether every measured ratio meets the goal."""
    cfg = report["config"]
    lines = [f"DDS delivery across processes: {cfg['width']}x{cfg['height']} rgb8 at {cfg['rate']:g} Hz, "
             f"profile {report['profile'] or '(Fast DDS defaults)'}"]
    ok = True
    inputs = report.get("inputs")
    if inputs:
        lines.append(f"inputs stage: {inputs['published']} sets published in {inputs['seconds']:.1f} s "
                     f"({inputs['achieved_hz']:.1f} Hz, {inputs['late']} late), publisher "
                     f"{cfg['publisher_reliability']} -> a plain subscriber process, sensor-data QoS")
        lines.append(f"  pairs delivered: {_pct(inputs['pairs_delivered'], inputs['published'])}; "
                     "received " + ", ".join(f"{k} {v}" for k, v in inputs["received"].items()))
        ok &= _met(inputs["pairs_delivered"], inputs["published"])
    node = report.get("node")
    if node:
        lines.append(f"node stage: {node['published']} sets published in {node['seconds']:.1f} s "
                     f"({node['achieved_hz']:.1f} Hz, {node['late']} late), publisher "
                     f"{cfg['publisher_reliability']} -> depth_node input {cfg['input_reliability']}")
        lines.append(f"  pairs delivered to the node: {_pct(node['pairs_delivered'], node['published'])}; "
                     "received " + ", ".join(f"{k} {v}" for k, v in node["received"].items())
                     + f"; unsynchronized {node['unsynchronized']}")
        lines.append(f"  processed {node['processed']} (latest pair wins: {node['dropped_busy']} replaced "
                     "while the backend was busy)")
        lines.append(f"  its outputs to a {cfg['subscriber_reliability']} subscriber: " + ", ".join(
            f"{k} {_pct(v['received'], v['of'])}" for k, v in node["outputs"].items()))
        ok &= _met(node["pairs_delivered"], node["published"])
        ok &= all(_met(v["received"], v["of"]) for v in node["outputs"].values())
    outputs = report.get("outputs")
    if outputs:
        lines.append(f"outputs stage: {outputs['published']} sets published in {outputs['seconds']:.1f} s "
                     f"({outputs['achieved_hz']:.1f} Hz, {outputs['late']} late), reliable depth 1 "
                     f"(the node's output QoS) -> {cfg['subscriber_reliability']} subscriber")
        lines.append("  delivered: " + ", ".join(f"{k} {_pct(v['received'], v['of'])}"
                                                 for k, v in outputs["outputs"].items()))
        ok &= all(_met(v["received"], v["of"]) for v in outputs["outputs"].values())
    lines.append(f"goal >= {GOAL:.0%} delivered everywhere: {'met' if ok else 'NOT met'}")
    return "\n".join(lines), ok


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.dds import configure_dds

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    if (args.frames < 1 or args.rate <= 0 or args.width < 32 or args.height < 32
            or not stages or set(stages) - {"inputs", "node", "outputs"}):
        print("stereo-depth dds-bench: need --frames >= 1, --rate > 0, an image of at least 32x32 and "
              "--stages from inputs,node,outputs", file=sys.stderr)
        return 2
    configure_dds(args.dds)
    from stereo_depth_ros.ros.dds_bench import DdsBenchConfig, run_dds_bench

    cfg = DdsBenchConfig(width=args.width, height=args.height, rate=args.rate, frames=args.frames,
                         publisher_reliability=args.publisher_reliability,
                         subscriber_reliability=args.subscriber_reliability,
                         input_reliability=args.input_reliability, backend=args.backend, stages=stages)
    try:
        report = run_dds_bench(cfg, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except RuntimeError as exc:
        print(f"stereo-depth dds-bench: {exc}", file=sys.stderr)
        return 1
    text, ok = format_report(report)
    print(text, flush=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**report, "goal_met": ok}, indent=2) + "\n")
    return 0
