"""``stereo-depth eval-bag BAG``: models on a rosbag2 offline (sqlite3 or MCAP): accuracy against a
ground-truth topic when present; photometric error and left-right consistency always/without GT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (or a single .db3/.mcap file)")
    parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                        help="default | sgbm | learned | a checkpoint path; repeat to compare "
                             "(default: default)")
    parser.add_argument("--left-topic", default="left/image_rect")
    parser.add_argument("--right-topic", default="right/image_rect")
    parser.add_argument("--left-info-topic", default="left/camera_info")
    parser.add_argument("--right-info-topic", default="right/camera_info")
    parser.add_argument("--gt-topic", default="ground_truth/disparity",
                        help="ground-truth disparity or depth image (falls back to ground_truth/depth; "
                             "'none' to ignore GT)")
    parser.add_argument("--gt-kind", choices=("auto", "disparity", "depth"), default="auto",
                        help="what the GT image holds (auto: depth when the topic name says so)")
    parser.add_argument("--sync-tolerance", type=float, default=0.0,
                        help="seconds of left/right stamp skew still paired (default 0: exact)")
    parser.add_argument("--baseline", type=float, default=None,
                        help="metres; overrides camera_info (AirSim leaves P_right[3] at 0)")
    lr = parser.add_mutually_exclusive_group()
    lr.add_argument("--lr-check", dest="left_right", action="store_true", default=None,
                    help="left-right consistency even with GT (one more model run per frame)")
    lr.add_argument("--no-lr-check", dest="left_right", action="store_false")
    parser.add_argument("--max-disp", type=float, default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N frames")
    parser.add_argument("--out", default="eval_bag_out", help="report directory (default eval_bag_out)")
    parser.add_argument("--figures", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.evaluation import bag_io, report
    from stereo_depth_ros.evaluation.bag_eval import BagEvalOptions, columns_for, evaluate_bag
    from stereo_depth_ros.evaluation.models import build_backend

    models = []
    for spec in args.models or ["default"]:
        try:
            models.append(build_backend(spec, args.max_disp, args.device, args.precision))
        except BackendError as exc:
            print(f"stereo-depth eval-bag: model {spec!r}: {exc}", file=sys.stderr)
            return 2
    options = BagEvalOptions(
        topics=bag_io.StereoTopics(args.left_topic, args.right_topic, args.left_info_topic,
                                   args.right_info_topic),
        gt_topic=None if args.gt_topic in ("", "none") else args.gt_topic, gt_kind=args.gt_kind,
        tolerance_ns=int(args.sync_tolerance * 1e9), baseline=args.baseline, left_right=args.left_right,
        limit=args.limit, figures=args.figures)
    try:
        runs, figures, info = evaluate_bag(args.bag, models, options, args.out)
    except bag_io.BagError as exc:
        print(f"stereo-depth eval-bag: {exc}", file=sys.stderr)
        return 2
    if "gt_not_found" in info:
        print(f"note: the bag has no ground-truth topic {info['gt_not_found']!r}; scored without "
              "ground truth (photometric error, left-right consistency)", file=sys.stderr)
    columns = columns_for(runs)
    paths = report.write_report(args.out, f"Stereo evaluation on bag {Path(args.bag).name}", runs,
                                {k: v for k, v in info.items() if k != "topics"} | {"topics": info["topics"]},
                                columns, figures)
    header, rows = report.table_rows(runs, columns)
    print(report.text_table(header, rows))
    print(f"frames paired: {info['paired']} of {info['left_images']} left images "
          f"({info['unpaired_left']} without a right image/camera_info); ground truth: {info['gt_topic']}")
    for run in runs:
        for note in run.notes:
            print(f"{run.model}: {note}")
        for err in run.errors:
            print(f"{run.model}: skipped {err['error']}", file=sys.stderr)
    print(f"report: {paths['markdown']}  results: {paths['json']}")
    if info["paired"] == 0:
        print("stereo-depth eval-bag: no stereo frame could be paired; check the topic options "
              f"(the bag has: {', '.join(info['topics'])})", file=sys.stderr)
        return 1
    return 0
