"""The training curve: validation figures against steps, from one or more runs' ``val_log.csv``.

    python -m stereo_depth_ros.training.curve RUN_DIR[:OFFSET] ... --out docs/figures/curve.png

A later stage that started from an earlier one's weights (``--init``) counts its steps from 0:
give it the earlier stage's step count as OFFSET so that the curve continues.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

DEFAULT_KEYS = ("real_bad3", "synthetic_bad3", "real_bad2", "synthetic_bad2")


Curves = dict[str, tuple[list[float], list[float]]]


def read_curves(runs: list[tuple[Path, int]], keys: tuple[str, ...]) -> Curves:
    """key -> (steps, values) over the runs' val_log.csv files, steps shifted by each run's offset."""
    curves: Curves = {k: ([], []) for k in keys}
    for run_dir, offset in runs:
        path = run_dir / "val_log.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no validation log (is {run_dir} a training run?)")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                for key in keys:
                    value = row.get(key)
                    if value not in (None, ""):
                        curves[key][0].append(float(row["step"]) + offset)
                        curves[key][1].append(float(value))
    return {k: v for k, v in curves.items() if v[0]}


def _run_arg(text: str) -> tuple[Path, int]:
    path, _, offset = text.partition(":")
    try:
        return Path(path), int(offset or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: OFFSET must be a whole number of steps") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=_run_arg, metavar="RUN_DIR[:OFFSET]")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--keys", default=",".join(DEFAULT_KEYS), help="val_log.csv columns (rates) to plot")
    p.add_argument("--title", default="validation during training")
    args = p.parse_args(argv)
    from stereo_depth_ros.evaluation.report import line_chart
    from stereo_depth_ros.visualize import save_rgb

    try:
        curves = read_curves(args.runs, tuple(k.strip() for k in args.keys.split(",") if k.strip()))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"curve: {exc}", file=sys.stderr)
        return 2
    if not curves:
        print("curve: none of the keys is in the logs", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_rgb(args.out, line_chart(curves, "training steps", args.title))
    for key, (steps, values) in curves.items():
        last = f"{values[-1]:.4f}" if math.isfinite(values[-1]) else "nan"
        print(f"{key}: {len(values)} points, last {last} at step {steps[-1]:g}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
