"""Acceptance check for shipped weights: a checkpoint vs OpenCV SGBM, side by side, in one run.

    python -m stereo_depth_ros.training.acceptance CHECKPOINT [--count 20] [--middlebury DIR]

Runs both on held-out synthetic scenes (seeds from 2,000,000: never trained or validated
on) and on the real Middlebury pairs, through ``stereo_depth_ros.evaluation`` (the same code
as ``stereo-depth eval``), prints bad-3 and EPE over valid ground truth for both, and says
whether the checkpoint beats SGBM on both datasets (lower bad-3 AND lower EPE). Exit status
0 when it does, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def compare(
    checkpoint: str,
    count: int = 20,
    middlebury: str | None = None,
    out_dir: str | None = None,
    width: int = 640,
    height: int = 480,
    device: str = "cpu",
    confidence_threshold: float = 0.0,
) -> dict[str, Any]:
    from stereo_depth_ros.backends.learned import LearnedBackend
    from stereo_depth_ros.evaluation.models import build_backend
    from stereo_depth_ros.evaluation.run_dataset import (
        EVAL_SEED_START,
        dataset_source,
        evaluate,
        synthetic_source,
    )

    max_disp = 128.0 * width / 640.0
    datasets: list[tuple[str, Any, float | None]] = [
        (
            f"synthetic ({count} held-out scenes, {width}x{height})",
            synthetic_source(count, EVAL_SEED_START, width, height, max_disp),
            max_disp,
        ),
    ]
    if middlebury and Path(middlebury).is_dir():
        datasets.append((f"middlebury ({middlebury})", dataset_source("middlebury", middlebury), None))
    results: dict[str, Any] = {
        "checkpoint": checkpoint,
        "confidence_threshold": confidence_threshold,
        "datasets": {},
    }
    for name, source, disp in datasets:
        backend = LearnedBackend(
            model=checkpoint,
            device=device,
            precision="fp32",
            max_disparity=disp,
            confidence_threshold=confidence_threshold,
        )
        models = [build_backend("sgbm", disp), (checkpoint, backend)]
        sub = None if out_dir is None else str(Path(out_dir) / name.split()[0])
        runs, _ = evaluate(source, models, sub, disp, figures=2 if sub else 0, progress=False)
        sgbm, learned = (r.summary for r in runs)
        keys = ("epe", "bad3", "d1_all", "density", "time_ms")
        results["datasets"][name] = {
            "sgbm": {k: sgbm.get(k) for k in keys},
            "learned": {k: learned.get(k) for k in keys},
            "beats_sgbm": bool(
                learned.get("bad3", 1) < sgbm.get("bad3", 0) and learned.get("epe", 1e9) < sgbm.get("epe", 0)
            ),
        }
    results["accepted"] = len(results["datasets"]) == 2 and all(
        d["beats_sgbm"] for d in results["datasets"].values()
    )
    return results


def format_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'dataset':52s} {'model':8s} {'EPE px':>8s} {'bad-3 %':>8s} {'D1 %':>7s} {'density':>8s} {'ms':>7s}"
    ]
    for name, d in results["datasets"].items():
        for model in ("sgbm", "learned"):
            m = d[model]
            lines.append(
                f"{name:52s} {model:8s} {m['epe']:8.3f} {100 * m['bad3']:8.2f} {100 * m['d1_all']:7.2f} "
                f"{m['density']:8.3f} {m['time_ms'] or float('nan'):7.0f}"
            )
        lines.append(f"{'':52s} -> learned beats SGBM on bad-3 and EPE: {'yes' if d['beats_sgbm'] else 'NO'}")
    lines.append(
        f"accepted as default (beats SGBM on both datasets): {'YES' if results['accepted'] else 'NO'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--count", type=int, default=20, help="held-out synthetic scenes (default 20)")
    p.add_argument("--middlebury", default="../shared/data/middlebury", help="Middlebury root ('' to skip)")
    p.add_argument("--out", default=None, help="also write figures and a JSON summary here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.0,
        help="learned backend option: NaN where its confidence is lower (default 0: dense)",
    )
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results = compare(
        args.checkpoint,
        args.count,
        args.middlebury or None,
        args.out,
        confidence_threshold=args.confidence_threshold,
    )
    print(format_table(results))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        name = f"acceptance_conf{args.confidence_threshold:g}.json"
        (Path(args.out) / name).write_text(json.dumps(results, indent=2))
    return 0 if results["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
