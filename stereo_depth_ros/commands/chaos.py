"""``stereo-depth chaos``: a recorded bag replayed in a loop at several rates into a real
``stereo-depth run`` process, for as long as you like: it must keep processing after every loop,
account for every frame and keep its memory flat, and stop cleanly (see evaluation/chaos.py).

    stereo-depth chaos --layout both --minutes 30        # the long variant (CI runs ~1 minute)

Exit status 1 when a check failed, 0 when all passed (or on Ctrl-C: the report so far).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=("airsim", "synthetic", "both"), default="both",
                        help="airsim: AirSim names, bgr8, P[3] = 0, right camera +25 ms, into --source "
                             "airsim; synthetic: the synthetic camera's topics and /clock, into --source bag "
                             "(use_sim_time: the clock goes back at every loop); both: one after the other")
    parser.add_argument("--minutes", type=float, default=2.0, help="playing time per layout (default 2)")
    parser.add_argument("--rates", default="1,2,4,0.5",
                        help="replay rates, each for an equal share of the time (default 1,2,4,0.5)")
    parser.add_argument("--frames", type=int, default=20, help="frames in the bag, one loop (default 20)")
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the frames (default 160x120)")
    parser.add_argument("--backend", default="sgbm", help="depth backend (default sgbm)")
    parser.add_argument("--no-nearest-object", dest="nearest", action="store_false",
                        help="leave the nearest-object node out of the graph")
    parser.add_argument("--max-growth", type=float, default=16.0,
                        help="MiB the graph's RSS may grow after warm-up (default 16)")
    parser.add_argument("--work-dir", default="", help="where the bags go (default: a temporary folder)")
    parser.add_argument("--json", default="", help="also write the full report(s) here")
    parser.add_argument("--dds", default="auto", choices=("auto", "loopback", "system"),
                        help="DDS policy (default auto: loopback unless a ROS install or profile is set)")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.dds import configure_dds

    try:
        rates = tuple(float(r) for r in args.rates.split(","))
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print("stereo-depth chaos: --rates takes numbers like 1,2,4 and --size WIDTHxHEIGHT", file=sys.stderr)
        return 2
    if args.minutes <= 0 or not rates or min(rates) <= 0 or args.frames < 2 or width < 32 or height < 32:
        print("stereo-depth chaos: need --minutes > 0, rates > 0, --frames >= 2 and frames of at least 32x32",
              file=sys.stderr)
        return 2
    configure_dds(args.dds)  # before rclpy starts; the graph process inherits it

    from stereo_depth_ros import stopping
    from stereo_depth_ros.evaluation.bag_io import BagError
    from stereo_depth_ros.evaluation.chaos import format_report
    from stereo_depth_ros.ros.chaos_graph import ChaosConfig, run_chaos

    layouts = ("airsim", "synthetic") if args.layout == "both" else (args.layout,)
    reports = []
    with tempfile.TemporaryDirectory(prefix="stereo_depth_chaos_") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for layout in layouts:
            if stopping.requested():
                break
            cfg = ChaosConfig(layout=layout, rates=rates, seconds_per_rate=60.0 * args.minutes / len(rates),
                              frames=args.frames, width=width, height=height, backend=args.backend,
                              nearest=args.nearest, max_growth_mib=args.max_growth)
            try:
                report = run_chaos(cfg, work, progress=lambda line: print(line, flush=True))
            except (BagError, ValueError) as exc:
                print(f"stereo-depth chaos: {exc}", file=sys.stderr)
                return 2
            print(format_report(report), flush=True)
            reports.append(report)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(reports, indent=2, default=str) + "\n")
        print(f"chaos: report written to {path}")
    return 0 if all(r["ok"] for r in reports) else 1
