"""``stereo-depth train``: supervised training of a stereo network from a YAML config."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="fast_default",
        help="YAML file, or the name of a shipped config (fast_default, dispnet, stereoconvnet, tiny_test)",
    )
    parser.add_argument("--out", default=None, help="output directory (default: results/train_<config name>)")
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end training (with the learning rate fully annealed) after this much wall-clock time",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    parser.add_argument("--init", default=None, help="start from this checkpoint's weights (fresh optimizer)")
    parser.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cpu")
    parser.add_argument("--seed", type=int, default=None, help="override the random seed")
    parser.add_argument("--threads", type=int, default=None, help="override torch CPU threads")
    parser.add_argument("--workers", type=int, default=None, help="override data loader worker processes")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stereo_depth_ros.estimator import CheckpointError
    from stereo_depth_ros.training.loop import Trainer, TrainingError, load_config, resolve_config_path

    try:
        cfg = load_config(args.config)
        name = resolve_config_path(args.config).stem
        if args.seed is not None:
            cfg["train"]["seed"] = args.seed
        if args.threads is not None:
            cfg["train"]["num_threads"] = args.threads
        if args.workers is not None:
            cfg["train"]["num_workers"] = args.workers
        if args.lr is not None:
            cfg["train"]["lr"] = args.lr
        if args.time_budget is not None:
            cfg["train"]["time_budget_s"] = args.time_budget
        out = Path(args.out or f"results/train_{name}")
        command = (
            "stereo-depth train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if len(sys.argv) > 1 and sys.argv[1] == "train"
            else "stereo-depth train " + shlex.join(_reconstruct(args))
        )
        trainer = Trainer(cfg, out, device=args.device, command=command)
        trainer.init_from = args.init
        print(f"training {cfg['arch']} on {trainer.device} -> {out}", flush=True)
        result = trainer.run(steps=args.steps, resume=args.resume, progress=not args.no_progress)
    except (TrainingError, CheckpointError, ValueError) as exc:
        print(f"stereo-depth train: {exc}", file=sys.stderr)
        return 2
    shown = {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}
    print(f"done: {result.steps} steps, final weights {result.final_checkpoint}")
    print(f"validation: {shown}")
    return 0


def _reconstruct(args: argparse.Namespace) -> list[str]:
    """The equivalent command-line arguments (when called programmatically)."""
    out = ["--config", str(args.config)]
    for flag, value in (
        ("--out", args.out),
        ("--steps", args.steps),
        ("--device", args.device),
        ("--seed", args.seed),
        ("--threads", args.threads),
        ("--workers", args.workers),
    ):
        if value is not None and not (flag == "--device" and value == "auto"):
            out += [flag, str(value)]
    if args.resume:
        out.append("--resume")
    return out
