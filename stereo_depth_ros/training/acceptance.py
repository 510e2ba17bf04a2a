"""Acceptance check for a default stereo model: a checkpoint vs OpenCV SGBM, side by side, in one run.

    python -m stereo_depth_ros.training.acceptance CHECKPOINT [--real ../shared/data/real/val]
        [--count 20] [--out DIR]

SGBM runs with stereo_image_proc's settings, each scene over its own disparity range
(Middlebury's ``ndisp``, rounded up to 16). Both go through ``stereo_depth_ros.evaluation``
(the same code as ``stereo-depth eval``), scored three ways (raw; dense, holes filled as the
KITTI devkit and the Middlebury SDK do; on the pixels SGBM covers), averaged over scenes.
The checkpoint is accepted as the default when

- on the real validation pairs: dense bad-3 <= 0.6 x SGBM's, dense EPE and dense bad-2 lower
  than SGBM's, and bad-3 on SGBM's own pixels no worse than SGBM's;
- on ``count`` held-out synthetic scenes (seeds from 2,000,000: never trained or validated
  on): dense EPE, bad-2 and bad-3 lower than SGBM's.

Exit status 0 when accepted, 1 when not, 2 when the data is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REAL_RATIO = 0.6  # dense bad-3 must be at most this share of SGBM's on real pairs
GOAL_RATIO = 0.5
KEYS = ("epe", "bad2", "bad3", "density", "dense_epe", "dense_bad2", "dense_bad3", "ref_epe",
        "ref_bad3", "time_ms")


def _verdict(sgbm: dict[str, float], model: dict[str, float], real: bool) -> dict[str, bool]:
    def lower(key: str) -> bool:
        return model[key] < sgbm[key]

    checks = {"dense EPE lower": lower("dense_epe"), "dense bad-2 lower": lower("dense_bad2")}
    if real:
        ratio_ok = model["dense_bad3"] <= REAL_RATIO * sgbm["dense_bad3"]
        checks[f"dense bad-3 <= {REAL_RATIO} x SGBM's"] = ratio_ok
        checks["bad-3 on SGBM's pixels no worse"] = model["ref_bad3"] <= sgbm["ref_bad3"]
    else:
        checks["dense bad-3 lower"] = lower("dense_bad3")
    return checks


def compare(
    checkpoint: str,
    real: str | None = "../shared/data/real/val",
    count: int = 20,
    out_dir: str | None = None,
    width: int = 640,
    height: int = 480,
    device: str = "cpu",
) -> dict[str, Any]:
    from stereo_depth_ros.backends.learned import LearnedBackend
    from stereo_depth_ros.evaluation.models import build_backend
    from stereo_depth_ros.evaluation.run_dataset import (
        EVAL_SEED_START,
        dataset_source,
        evaluate,
        synthetic_source,
    )

    synth_disp = 128.0 * width / 640.0
    datasets: list[tuple[str, Any, float | None, bool]] = []
    if real:
        datasets.append((f"real ({real})", dataset_source("middlebury", real), None, True))
    if count:
        source = synthetic_source(count, EVAL_SEED_START, width, height, synth_disp)
        datasets.append((f"synthetic ({count} held-out scenes, {width}x{height})", source, synth_disp, False))
    results: dict[str, Any] = {"checkpoint": checkpoint, "datasets": {}}
    for name, source, disp, is_real in datasets:
        backend = LearnedBackend(model=checkpoint, device=device, precision="fp32", max_disparity=disp)
        models = [build_backend("sgbm", disp), (checkpoint, backend)]
        sub = None if out_dir is None else str(Path(out_dir) / name.split()[0])
        runs, _ = evaluate(source, models, sub, disp, figures=2 if sub else 0, progress=False,
                           reference=0, scene_range=disp is None, by_pixels=False)
        sgbm, learned = ({k: r.summary.get(k) for k in KEYS} for r in runs)
        checks = _verdict(sgbm, learned, is_real)
        results["datasets"][name] = {
            "sgbm": sgbm, "learned": learned, "checks": checks, "passed": all(checks.values()),
            "dense_bad3_ratio": learned["dense_bad3"] / sgbm["dense_bad3"] if sgbm["dense_bad3"] else None,
            "frames": runs[1].summary.get("frames"), "failed": [e["error"] for r in runs for e in r.errors],
        }
    passed = [d["passed"] for d in results["datasets"].values()]
    results["accepted"] = len(passed) == 2 and all(passed)
    return results


def format_table(results: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    def px(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    head = ("| data | method | raw: EPE / bad-3 / density | dense: EPE / bad-2 / bad-3 | "
            "on SGBM's pixels: EPE / bad-3 | ms |")
    lines = [head, "|---|---|---|---|---|---|"]
    for name, d in results["datasets"].items():
        methods = (("SGBM (stereo_image_proc settings)", d["sgbm"]), (results["checkpoint"], d["learned"]))
        for label, m in methods:
            lines.append(
                f"| {name} | {label} | {px(m['epe'])} / {pct(m['bad3'])} % / {pct(m['density'])} % | "
                f"{px(m['dense_epe'])} / {pct(m['dense_bad2'])} % / {pct(m['dense_bad3'])} % | "
                f"{px(m['ref_epe'])} / {pct(m['ref_bad3'])} % | {m['time_ms'] or float('nan'):.0f} |")
            name = ""
    lines.append("")
    for name, d in results["datasets"].items():
        ratio = d["dense_bad3_ratio"]
        lines.append(f"{name}: {d['frames']} scenes; dense bad-3 = "
                     f"{'-' if ratio is None else f'{ratio:.2f}'} x SGBM's (goal {GOAL_RATIO})")
        lines += [f"  {'ok ' if ok else 'NO '} {check}" for check, ok in d["checks"].items()]
        lines += [f"  failed: {err}" for err in d["failed"]]
    lines.append(f"accepted as the default: {'YES' if results['accepted'] else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--real", default="../shared/data/real/val", help="real pairs with GT (Middlebury layout)")
    p.add_argument("--count", type=int, default=20, help="held-out synthetic scenes (default 20)")
    p.add_argument("--out", default=None, help="also write figures and a JSON summary here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not Path(args.real).is_dir():
        print(f"acceptance: {args.real} is not a directory (the real validation pairs)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    results = compare(args.checkpoint, args.real, args.count, args.out)
    print(format_table(results))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "acceptance.json").write_text(json.dumps(results, indent=2))
    return 0 if results["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
