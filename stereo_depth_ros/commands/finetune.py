"""``stereo-depth finetune``: self-supervised adaptation of a stereo model to unlabeled pairs."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint to start from ('default' or a path)")
    parser.add_argument(
        "--data",
        required=True,
        help="folder (left/ + right/ images, or */im0.png + im1.png) or a rosbag2 directory/file",
    )
    parser.add_argument("--left-topic", default="left/image_rect", help="rosbag input: left image topic")
    parser.add_argument("--right-topic", default="right/image_rect", help="rosbag input: right image topic")
    parser.add_argument("--limit", type=int, default=None, help="rosbag input: use at most N frames")
    parser.add_argument("--out", required=True, help="where to write the fine-tuned checkpoint (.pt)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--crop", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--smoothness", type=float, default=0.05, help="edge-aware smoothness weight")
    parser.add_argument("--lr-consistency", type=float, default=0.5, help="left-right consistency weight")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def _is_bag(path) -> bool:
    return path.suffix in (".mcap", ".db3") or (path.is_dir() and (path / "metadata.yaml").is_file())


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stereo_depth_ros.estimator import CheckpointError
    from stereo_depth_ros.training.finetune import (
        FinetuneConfig,
        FinetuneError,
        bag_pairs,
        finetune,
        folder_pairs,
    )

    data = Path(args.data)
    if args.steps <= 0 or args.batch_size <= 0:
        print("stereo-depth finetune: --steps and --batch-size must be positive", file=sys.stderr)
        return 2
    try:
        if _is_bag(data):
            pairs = bag_pairs(data, args.left_topic, args.right_topic, args.limit)
            desc = f"rosbag {data} ({args.left_topic}, {args.right_topic}), {len(pairs)} pairs"
        else:
            pairs = folder_pairs(data)
            desc = f"folder {data}, {len(pairs)} pairs"
        cfg = FinetuneConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            crop=tuple(args.crop),
            smoothness=args.smoothness,
            lr_consistency=args.lr_consistency,
            seed=args.seed,
            num_threads=args.threads,
        )
        print(f"fine-tuning {args.model} on {desc}", flush=True)
        command = "stereo-depth finetune " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["finetune"] else [])
        result = finetune(args.model, pairs, args.out, cfg, args.device, desc, command, not args.no_progress)
    except (FinetuneError, CheckpointError, ValueError) as exc:
        print(f"stereo-depth finetune: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result['out']} (loss {result['loss_first']:.4f} -> {result['loss_last']:.4f})")
    return 0
