"""``stereo-depth demo``: the synthetic stereo camera -> the depth node -> results, over real
ROS 2 (rclpy + DDS) in one process.

The camera first renders --frames frames of a moving procedural scene (with exact ground truth),
then publishes them in a loop at --rate Hz; the depth node turns each into disparity / depth /
points2, and a collector node receives them and the camera's ground truth by stamp. The default
scene (seed 19: a slab, a ball and a rod on a ground plane before a wall, disparities up to 24 px)
and size suit any backend: SGBM searches 32 px, so only a 38 px band on the left is out of its
reach. Written to --out: left_XXXX.png, disparity_XXXX.png (colorized, same scale as
gt_disparity_XXXX.png), error_XXXX.png, cloud.ply (the last frame's points2, coloured) and
metrics.json (EPE, bad-N, D1 per frame and pixel-weighted over all, depth errors, backend, size,
frames, rates, per-frame stage times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from stereo_depth_ros import stopping


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results/demo", help="results folder (default results/demo)")
    parser.add_argument("--frames", type=int, default=10, help="frames to process (default 10)")
    parser.add_argument("--width", type=int, default=320, help="image width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="image height (default 240)")
    parser.add_argument("--backend", default="default",
                        help="default (best that works here), learned or sgbm")
    parser.add_argument("--model", default="", help="checkpoint for the learned backend ('' = shipped)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--max-disparity", type=float, default=24.0,
                        help="largest disparity in the synthetic scene, px (default 24; sgbm searches "
                             "the next multiple of 16 above it)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz (default 10)")
    parser.add_argument("--seed", type=int, default=19, help="scene seed (default 19)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--dds", default="auto", choices=("auto", "loopback", "system"),
                        help="DDS policy: loopback confines DDS to this machine (default auto: "
                             "loopback unless a ROS install or a profile is already set)")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.dds import configure_dds

    configure_dds(args.dds)
    if args.frames < 1 or args.width < 32 or args.height < 32 or args.rate <= 0:
        print("stereo-depth demo: need --frames >= 1, --rate > 0 and an image of at least 32x32",
              file=sys.stderr)
        return 2

    from stereo_depth_ros.backends import BackendError
    from stereo_depth_ros.ros.demo_graph import DemoSettings, run_demo_graph

    settings = DemoSettings(frames=args.frames, width=args.width, height=args.height,
                            backend=args.backend, model=args.model, device=args.device,
                            max_disparity=float(args.max_disparity), rate=args.rate, seed=args.seed)
    out = Path(args.out)
    started = time.monotonic()
    try:
        demo = run_demo_graph(settings, args.timeout, announce=lambda line: print(line, flush=True))
    except BackendError as exc:
        print(f"stereo-depth demo: the {args.backend} backend cannot start: {exc}", file=sys.stderr)
        return 1
    if demo.stopped:
        print(f"stereo-depth demo: {stopping.reason()} received: stopped after {len(demo.stamps)} of "
              f"{args.frames} frames; nothing written", file=sys.stderr)
        return 0
    if len(demo.stamps) < args.frames:
        print(f"stereo-depth demo: only {len(demo.stamps)} of {args.frames} frames came back within "
              f"{args.timeout:g} s (camera published {demo.published}; node counters: "
              f"{demo.status['counters']})", file=sys.stderr)
        if not demo.stamps:
            return 1
    out.mkdir(parents=True, exist_ok=True)
    report = _write_results(out, demo, args)
    report["wall_time_s"] = round(time.monotonic() - started, 2)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    for line in summary_lines(report):
        print(line)
    print(f"demo: wrote {out}/ (metrics.json, cloud.ply, {len(demo.stamps)} x left/disparity/error PNGs) "
          f"in {report['wall_time_s']:.1f} s")
    return 0


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the numbers mean, in three lines: accuracy, the node's time, the rate."""
    agg, t = report["aggregate"], report["node_ms_per_frame"]
    lines = [
        f"demo: accuracy of {report['backend']} over {report['frames']} frames {report['width']}x"
        f"{report['height']} against the camera's exact ground truth: {100 * agg['density']:.0f} % of "
        f"pixels have a disparity (EPE {agg['epe']:.2f} px on those); bad-3 {100 * agg['bad3']:.1f} % of "
        f"all pixels (a pixel without disparity counts as bad); depth AbsRel "
        f"{report['depth_aggregate']['abs_rel']:.3f}",
        f"demo: the depth node's time per frame (median): {t['work']:.1f} ms, of which the model "
        f"{t['model']:.1f} ms (the rest: image conversion {t['conversion']:.1f}, cloud {t['cloud']:.1f}, "
        f"publishing {t['publish']:.1f}); frames waited {t['queue']:.1f} ms for the node; "
        f"{report['backend']} on {report['device']}",
        f"demo: camera {report['camera_rate_hz']:g} Hz, node output {report['fps']:.1f} frames/s over "
        f"these frames"
        + (f"; {report['node_counters'].get('dropped_busy', 0)} frames dropped while the node was busy "
           "(latest pair wins)" if report["node_counters"].get("dropped_busy") else "; no frame dropped")
        + "; the camera and a collector that receives every output run in this process too",
    ]
    return lines


def _frame_times(demo: Any, stamps: list[int]) -> dict[str, float]:
    """Median per-frame stage times (ms) over the frames reported: work = conversion + model +
    cloud + publish; queue = how long a pair waited for the node (the "sync" stage)."""
    rows = [demo.frame_timings[s] for s in stamps if s in demo.frame_timings]
    if not rows:
        return {k: float("nan") for k in ("work", "model", "conversion", "cloud", "publish", "queue")}

    def med(key: str) -> float:
        return 1000.0 * statistics.median(r.get(key, 0.0) for r in rows)

    return {"work": 1000.0 * statistics.median(r["total"] - r["sync"] for r in rows),
            "model": med("model"), "conversion": med("conversion"), "cloud": med("cloud"),
            "publish": med("publish"), "queue": med("sync"), "frames": len(rows)}


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
        "render_s": round(demo.render_s, 2),
        "node_ms_per_frame": _frame_times(demo, stamps),
        "mean_stage_s": status["mean_timings"],
        "node_counters": status["counters"],
        "aggregate": aggregate([{k: f[k] for k in stereo_keys} for f in per_frame]),
        "depth_aggregate": aggregate(depth_rows),
        "per_frame": per_frame,
        "cloud": {"file": "cloud.ply", "points": n_points, "frame_id": cloud.header.frame_id},
        "metric_notes": "EPE over pixels with both estimate and GT; bad-N/D1 count missing "
                        "estimates as errors; density = share of GT pixels with an estimate; "
                        "node_ms_per_frame: medians per frame, work = conversion + model + cloud + "
                        "publish, queue = time a pair waited for the node",
    }
