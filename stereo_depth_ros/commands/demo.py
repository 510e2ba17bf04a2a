"""``stereo-depth demo``: the synthetic stereo camera -> the depth node -> results, over real
ROS 2 (rclpy + DDS) in one process.

The camera renders --frames frames of a moving procedural scene (with exact ground truth),
the depth node turns each into disparity / depth / points2, and a collector node receives
them and the camera's ground truth by stamp. Written to --out: left_XXXX.png,
disparity_XXXX.png (colorized, same scale as gt_disparity_XXXX.png), error_XXXX.png,
cloud.ply (the last frame's points2, coloured) and metrics.json (EPE, bad-N, D1 per frame
and pixel-weighted over all, depth errors, backend, size, frames, fps, per-stage times).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/demo", help="results folder (default results/demo)")
    parser.add_argument("--frames", type=int, default=10, help="frames to process (default 10)")
    parser.add_argument("--width", type=int, default=320, help="image width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="image height (default 240)")
    parser.add_argument("--backend", default="default",
                        help="default (best that works here), learned or sgbm")
    parser.add_argument("--model", default="", help="checkpoint for the learned backend ('' = shipped)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--max-disparity", type=float, default=64.0,
                        help="largest disparity in the synthetic scene, px (default 64)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--dds", default="auto", choices=("auto", "loopback", "system"),
                        help="DDS policy: loopback confines DDS to this machine (default auto: "
                             "loopback unless a ROS install or a profile is already set)")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.dds import configure_dds

    configure_dds(args.dds)
    if args.frames < 1 or args.width < 32 or args.height < 32:
        print("stereo-depth demo: need --frames >= 1 and an image of at least 32x32", file=sys.stderr)
        return 2

    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.ros.demo_graph import DemoSettings, run_demo_graph

    settings = DemoSettings(frames=args.frames, width=args.width, height=args.height,
                            backend=args.backend, model=args.model, device=args.device,
                            max_disparity=float(args.max_disparity), rate=args.rate, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        demo = run_demo_graph(settings, args.timeout, announce=lambda line: print(line, flush=True))
    except BackendError as exc:
        print(f"stereo-depth demo: the {args.backend} backend cannot start: {exc}", file=sys.stderr)
        return 1
    if len(demo.stamps) < args.frames:
        print(f"stereo-depth demo: only {len(demo.stamps)} of {args.frames} frames came back within "
              f"{args.timeout:g} s (camera published {demo.published}; node status: "
              f"{demo.status['counters']})", file=sys.stderr)
        if not demo.stamps:
            return 1
    report = _write_results(out, demo, args)
    report["wall_time_s"] = round(time.monotonic() - started, 2)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    agg = report["aggregate"]
    print(f"demo: {report['frames']} frames {args.width}x{args.height}, backend {report['backend']}: "
          f"EPE {agg['epe']:.2f} px, bad-3 {100 * agg['bad3']:.1f} %, D1 {100 * agg['d1_all']:.1f} %, "
          f"density {100 * agg['density']:.0f} %, depth AbsRel {report['depth_aggregate']['abs_rel']:.3f}; "
          f"{report['fps']:.1f} frames/s out, {1000 * report['mean_stage_s'].get('total', 0):.0f} ms/frame "
          f"in the node")
    print(f"demo: wrote {out}/ (metrics.json, cloud.ply, {len(demo.stamps)} x left/disparity/error PNGs) "
          f"in {report['wall_time_s']:.1f} s")
    return 0


def _write_results(out: Path, demo: Any, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from stereo_depth_ros.evaluation.metrics import aggregate, depth_metrics, stereo_metrics
    from stereo_depth_ros.pointcloud import unpack_rgb, write_ply
    from stereo_depth_ros.ros import conversions as conv
    from stereo_depth_ros.ros.compat import point_cloud2
    from stereo_depth_ros.visualize import colorize, error_map, save_rgb

    collector, stamps, status, doffs = demo.collector, demo.stamps, demo.status, demo.doffs
    per_frame, depth_rows = [], []
    vmax = float(args.max_disparity)
    for i, stamp in enumerate(stamps):
        disp_msg = collector.got["disparity"][stamp]
        pred = conv.disparity_from_msg(disp_msg)
        gt = conv.image_32f(collector.got["ground_truth/disparity"][stamp])
        # published disparity = shift - (cx_l - cx_r); the camera's GT is a match shift
        gt = gt - doffs
        m = stereo_metrics(pred, gt)
        m["stamp_ns"] = stamp
        per_frame.append(m)
        dm = depth_metrics(conv.image_32f(collector.got["depth"][stamp]),
                           conv.image_32f(collector.got["ground_truth/depth"][stamp]))
        depth_rows.append(dm)
        left = conv.image_to_rgb(collector.got["left/image_rect"][stamp])
        save_rgb(out / f"left_{i:04d}.png", left)
        save_rgb(out / f"disparity_{i:04d}.png", colorize(pred, 0.0, vmax))
        save_rgb(out / f"gt_disparity_{i:04d}.png", colorize(gt, 0.0, vmax))
        save_rgb(out / f"error_{i:04d}.png", error_map(pred, gt))
    cloud = collector.got["points2"][stamps[-1]]
    pts = point_cloud2.read_points(cloud)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=-1)
    rgb = unpack_rgb(pts["rgb"]) if "rgb" in pts.dtype.names else None
    n_points = write_ply(out / "cloud.ply", xyz, rgb)
    times = [collector.first_output[s] for s in stamps if s in collector.first_output]
    fps = (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 and max(times) > min(times) else 0.0
    stereo_keys = [k for k in per_frame[0] if k != "stamp_ns"]
    return {
        "backend": demo.backend_name,
        "device": demo.backend_device,
        "backend_note": status["backend_note"],
        "width": args.width, "height": args.height,
        "frames": len(stamps),
        "max_disparity": args.max_disparity,
        "seed": args.seed,
        "camera_rate_hz": args.rate,
        "fps": fps,
        "mean_stage_s": status["mean_timings"],
        "node_counters": status["counters"],
        "aggregate": aggregate([{k: f[k] for k in stereo_keys} for f in per_frame]),
        "depth_aggregate": aggregate(depth_rows),
        "per_frame": per_frame,
        "cloud": {"file": "cloud.ply", "points": n_points, "frame_id": cloud.header.frame_id},
        "metric_notes": "EPE over pixels with both estimate and GT; bad-N/D1 count missing "
                        "estimates as errors; density = share of GT pixels with an estimate",
    }
