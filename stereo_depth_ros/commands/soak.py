"""``stereo-depth soak``: drive the real node graph (synthetic camera -> depth node ->
nearest-object node) in one process for --frames frames at --rate Hz and report frames in/out,
drops by cause, latency p50/p99 and resident memory. Exit status 1 when an exception occurred,
a frame is unaccounted for, or the camera could not send all frames in time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=1000, help="frames to send (default 1000)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz (default 30)")
    parser.add_argument("--width", type=int, default=320, help="image width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="image height (default 240)")
    parser.add_argument("--backend", default="sgbm", help="depth backend: sgbm (default), learned, default")
    parser.add_argument("--model", default="", help="checkpoint for the learned backend ('' = shipped)")
    parser.add_argument("--nearest-object", action=argparse.BooleanOptionalAction, default=True,
                        help="run the nearest-object node too (default on)")
    parser.add_argument("--max-disparity", type=float, default=48.0,
                        help="largest disparity in the synthetic scene, px; sgbm searches the next "
                             "multiple of 16 above it (default 48)")
    parser.add_argument("--loop-frames", type=int, default=30,
                        help="distinct scene frames rendered up front and replayed (default 30)")
    parser.add_argument("--json", default="", help="also write the full report (with RSS samples) here")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--dds", default="auto", choices=("auto", "loopback", "system"),
                        help="DDS policy (default auto: loopback unless a ROS install or profile is set)")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.dds import configure_dds

    if (args.frames < 1 or args.rate <= 0 or args.width < 32 or args.height < 32
            or args.max_disparity < 1):
        print("stereo-depth soak: need --frames >= 1, --rate > 0, --max-disparity >= 1 and "
              "an image of at least 32x32",
              file=sys.stderr)
        return 2
    configure_dds(args.dds)

    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.evaluation.soak import format_report
    from stereo_depth_ros.ros.soak_graph import SoakConfig, run_soak

    cfg = SoakConfig(frames=args.frames, rate=args.rate, width=args.width, height=args.height,
                     backend=args.backend, model=args.model, nearest=args.nearest_object,
                     loop_frames=args.loop_frames, progress_s=args.progress,
                     max_disparity=args.max_disparity)
    try:
        report = run_soak(cfg, progress=lambda line: print(line, flush=True))
    except BackendError as exc:
        print(f"stereo-depth soak: the {args.backend} backend cannot start: {exc}", file=sys.stderr)
        return 1
    print(format_report(report), flush=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"soak: report written to {path}")
    return 0 if report["ok"] else 1
