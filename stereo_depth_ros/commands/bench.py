"""``stereo-depth bench``: model latency/throughput/memory per backend and size, the depth node's
per-stage overhead, PointCloud2 vectorized vs per-point; SGBM on the same frame as baseline."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="320x240,640x480,960x540",
                        help="WxH list (default 320x240,640x480,960x540)")
    parser.add_argument("--backends", default="sgbm,learned",
                        help="sgbm, learned (shipped weights, else an untrained 'fast' net) or "
                             "checkpoint paths")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (learned backends)")
    parser.add_argument("--precision", default=None,
                        help="fp32,fp16,bf16 list for learned backends (default: fp16,fp32 on CUDA, "
                             "fp32 on CPU)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--no-node", action="store_true",
                        help="skip the depth-node stage timings (no rclpy)")
    parser.add_argument("--no-cloud", action="store_true", help="skip the PointCloud2 comparison")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--markdown", default=None, help="also write the run as a Markdown section here")
    parser.add_argument("--dds", choices=("auto", "loopback", "system"), default="auto")


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from stereo_depth_ros.dds import configure_dds
    from stereo_depth_ros.evaluation.bench import (
        format_markdown,
        format_report,
        parse_sizes,
        run_bench,
        tables,
        targets,
    )
    from stereo_depth_ros.evaluation.report import write_json

    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as exc:
        print(f"stereo-depth bench: {exc}", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("stereo-depth bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    configure_dds(args.dds)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    precisions = [p.strip() for p in args.precision.split(",")] if args.precision else None
    try:
        rep = run_bench(sizes, names, args.device, precisions, args.repeats, args.warmup,
                        node=not args.no_node, cloud=not args.no_cloud,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    except Exception as exc:  # a backend that cannot be built: say which and why
        print(f"stereo-depth bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(format_report(rep))
    if args.markdown:
        from pathlib import Path

        command = (f"stereo-depth bench --sizes {args.sizes} --backends {args.backends} "
                   f"--device {args.device} --repeats {args.repeats} --warmup {args.warmup}"
                   + (f" --threads {args.threads}" if args.threads else ""))
        Path(args.markdown).write_text(format_markdown(rep, command))
    if args.json:
        write_json(args.json, {"environment": rep.environment, "rows": rep.rows, "clouds": rep.clouds,
                               "notes": rep.notes, "tables": tables(rep), "targets": targets(rep)})
    return 0
