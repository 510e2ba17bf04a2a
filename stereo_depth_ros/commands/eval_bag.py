"""``stereo-depth eval-bag BAG``: models on a rosbag2 offline (sqlite3 or MCAP): accuracy against a
ground-truth topic when present; photometric error and left-right consistency always/without GT.

``--source NAME`` takes the input topics, the pairing tolerance (the depth node's ``slop`` when
the source uses approximate sync), the baseline and the ground-truth topic from
``config/sources/NAME.yaml``; options given explicitly win over the source's values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stereo_depth_ros.sources import SourceConfigError

# without --gt-topic or a source's: the synthetic camera's (bag_eval falls back to ground_truth/depth)
BAG_GT_DEFAULT = "ground_truth/disparity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (or a single .db3/.mcap file)")
    parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                        help="default | sgbm | learned | a checkpoint path; repeat to compare "
                             "(default: default)")
    parser.add_argument("--source", default=None,
                        help="camera source (airsim, cosys_airsim, bag, ... or a source YAML path): "
                             "topics, sync tolerance, baseline and ground truth from it")
    parser.add_argument("--arg", action="append", default=[], metavar="NAME:=VALUE",
                        help="source template argument, e.g. vehicle:=drone_2 (with --source)")
    parser.add_argument("--left-topic", default=None, help="default left/image_rect (or the source's)")
    parser.add_argument("--right-topic", default=None, help="default right/image_rect (or the source's)")
    parser.add_argument("--left-info-topic", default=None, help="default left/camera_info (or the source's)")
    parser.add_argument("--right-info-topic", default=None,
                        help="default right/camera_info (or the source's)")
    parser.add_argument("--gt-topic", default=None,
                        help="ground-truth disparity or depth image (default: the source's, else "
                             "ground_truth/disparity falling back to ground_truth/depth; 'none': no GT)")
    parser.add_argument("--gt-kind", choices=("auto", "disparity", "depth", "perspective"), default="auto",
                        help="what the GT image holds: disparity (px), depth (planar, m) or perspective "
                             "(distance along the ray, m); auto decides from the topic name and encoding "
                             "and the report says why")
    parser.add_argument("--sync-tolerance", type=float, default=None,
                        help="seconds of left/right stamp skew still paired (default 0: exact, or the "
                             "source's slop)")
    parser.add_argument("--baseline", type=float, default=None,
                        help="metres; overrides camera_info (AirSim leaves P_right[3] at 0; default: "
                             "the source's baseline parameter)")
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


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Topics, tolerance, baseline and GT topic: explicit options, else the source's, else the
    built-in defaults. Raises SourceConfigError for an unknown source or argument."""
    from stereo_depth_ros.sources import load_source, parse_param_assignment

    values: dict[str, Any] = {"left": "left/image_rect", "right": "right/image_rect",
                              "left_info": "left/camera_info", "right_info": "right/camera_info",
                              "gt": BAG_GT_DEFAULT, "tolerance": 0.0, "baseline": None, "source": None}
    if args.source:
        source = load_source(args.source, dict(parse_param_assignment(a) for a in args.arg))
        values |= {"left": source.topics["left/image_rect"], "right": source.topics["right/image_rect"],
                   "left_info": source.topics["left/camera_info"],
                   "right_info": source.topics["right/camera_info"], "source": source.name}
        if source.ground_truth:
            values["gt"] = source.ground_truth
        params = source.depth_node
        if params.get("approximate_sync"):
            values["tolerance"] = float(params.get("slop", 0.05))
        if float(params.get("baseline", 0.0) or 0.0) > 0:
            values["baseline"] = float(params["baseline"])
    elif args.arg:
        raise SourceConfigError("--arg needs --source")
    given = {"left": args.left_topic, "right": args.right_topic, "left_info": args.left_info_topic,
             "right_info": args.right_info_topic, "gt": args.gt_topic, "tolerance": args.sync_tolerance,
             "baseline": args.baseline}
    return values | {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.evaluation import bag_io, report
    from stereo_depth_ros.evaluation.bag_eval import BagEvalOptions, columns_for, evaluate_bag
    from stereo_depth_ros.evaluation.ground_truth import GroundTruthError
    from stereo_depth_ros.evaluation.models import build_backend

    try:
        where = source_settings(args)
    except SourceConfigError as exc:
        print(f"stereo-depth eval-bag: {exc}", file=sys.stderr)
        return 2

    models = []
    for spec in args.models or ["default"]:
        try:
            models.append(build_backend(spec, args.max_disp, args.device, args.precision))
        except BackendError as exc:
            print(f"stereo-depth eval-bag: model {spec!r}: {exc}", file=sys.stderr)
            return 2
    options = BagEvalOptions(
        topics=bag_io.StereoTopics(where["left"], where["right"], where["left_info"], where["right_info"]),
        gt_topic=None if where["gt"] in ("", "none") else where["gt"], gt_kind=args.gt_kind,
        tolerance_ns=int(where["tolerance"] * 1e9), baseline=where["baseline"], left_right=args.left_right,
        limit=args.limit, figures=args.figures)
    if where["source"]:
        baseline = "from camera_info" if where["baseline"] is None else f"{where['baseline']:g} m"
        print(f"source {where['source']}: left {where['left']}, right {where['right']}, ground truth "
              f"{where['gt']}, pairing tolerance {where['tolerance']:g} s, baseline {baseline}")
    try:
        runs, figures, info = evaluate_bag(args.bag, models, options, args.out)
    except (bag_io.BagError, GroundTruthError) as exc:
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
    if "gt_interpretation" in info:
        print(f"ground truth: {info['gt_interpretation']}")
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
