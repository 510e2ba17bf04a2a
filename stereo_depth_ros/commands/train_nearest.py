"""``stereo-depth train-nearest``: train the nearest-object U-Net and compare it with the baseline.

Typical use (what trained the shipped weights is recorded in the checkpoint and docs/nearest.md):

    stereo-depth train-nearest --out outputs/nearest --compare --install
    stereo-depth train-nearest --evaluate-only stereo_depth_ros/weights/nearest_unet.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

DEFAULT_OUT = "outputs/nearest"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 160x120, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size {w}x{h} is too small (at least 16x16)")
    return w, h


def _source(text: str) -> str:
    if text in ("gt", "sgbm") or (text.startswith("model:") and len(text) > 6):
        return text
    raise argparse.ArgumentTypeError(f"disparity source must be gt, sgbm or model:PATH, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                        help="output directory (default %(default)s)")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle schedule)")
    parser.add_argument("--size", type=_size, default=(160, 120), help="network input WxH (default 160x120)")
    parser.add_argument("--render-scale", type=int, default=2,
                        help="render and run stereo at this multiple of --size, then resize as the node does")
    parser.add_argument("--disparity-source", type=_source, default=None,
                        help="disparity fed to the U-Net: gt, sgbm or model:PATH (model:default = the "
                             "shipped stereo model); default sgbm for training, and with --evaluate-only the "
                             "one the checkpoint was trained on")
    parser.add_argument("--gt-fraction", type=float, default=0.3,
                        help="share of samples that get the exact disparity instead (augmentation)")
    parser.add_argument("--train-scenes", type=int, default=1200)
    parser.add_argument("--val-scenes", type=int, default=100)
    parser.add_argument("--test-scenes", type=int, default=200, help="held-out scenes for --compare")
    parser.add_argument("--image-mode", choices=("gray", "rgb"), default="gray")
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--no-batch-norm", action="store_true")
    parser.add_argument("--baseline-channel", action=argparse.BooleanOptionalAction, default=False,
                        help="feed the threshold baseline's mask as an input channel (default: no; "
                             "it did not raise validation IoU, see docs/nearest.md)")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--init", type=Path, metavar="CHECKPOINT",
                        help="start from this U-Net's weights (same architecture) with a new schedule")
    parser.add_argument("--prepare-only", action="store_true", help="render the scene caches and stop")
    parser.add_argument("--compare", action="store_true",
                        help="after training, compare with the threshold baseline on held-out scenes")
    parser.add_argument("--evaluate-only", type=Path, metavar="CHECKPOINT",
                        help="no training: compare CHECKPOINT with the baseline on held-out scenes")
    parser.add_argument("--install", action="store_true",
                        help="copy the trained model to stereo_depth_ros/weights/nearest_unet.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from stereo_depth_ros.models.unet import UNetConfig
    from stereo_depth_ros.nearest import default_model_path, load_unet_checkpoint
    from stereo_depth_ros.training import nearest as tn

    torch.set_num_threads(max(1, args.threads))
    progress = not args.no_progress
    out: Path = args.out
    cache = out / "cache"
    if args.evaluate_only is not None:
        try:
            _, ckpt = load_unet_checkpoint(args.evaluate_only)
        except Exception as exc:
            print(f"train-nearest: {exc}", file=sys.stderr)
            return 2
        data_cfg = tn.NearestDataConfig(**{
            k: v for k, v in ckpt["meta"]["training_data"].items()
            if k in tn.NearestDataConfig.__dataclass_fields__
        })
        if args.disparity_source is not None:  # the same U-Net on another stereo backend's output
            data_cfg = dataclasses.replace(data_cfg, disparity_source=args.disparity_source)
    else:
        w, h = args.size
        data_cfg = tn.NearestDataConfig(width=w, height=h, render_scale=args.render_scale,
                                        disparity_source=args.disparity_source or "sgbm")
    for name, count in (("train", args.train_scenes), ("val", args.val_scenes), ("test", args.test_scenes)):
        if count < 1:
            print(f"train-nearest: --{name}-scenes must be >= 1", file=sys.stderr)
            return 2

    def dataset(kind: str, seed0: int, count: int) -> dict:
        path = cache / f"{kind}-{seed0}-{count}.npz"  # one file per seed range: nothing overwritten
        return tn.build_dataset(range(seed0, seed0 + count), data_cfg, path, progress)

    if args.evaluate_only is None:
        train_data = dataset("train", tn.TRAIN_SEED0, args.train_scenes)
        val_data = dataset("val", tn.VAL_SEED0, args.val_scenes)
        if args.prepare_only:
            dataset("test", tn.TEST_SEED0, args.test_scenes)
            print(f"scene caches written to {cache}")
            return 0
        net_cfg = UNetConfig(image_mode=args.image_mode, base_channels=args.base_channels,
                             levels=args.levels, dropout=args.dropout, batch_norm=not args.no_batch_norm,
                             use_baseline=args.baseline_channel)
        train_cfg = tn.TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                   gt_fraction=args.gt_fraction, seed=args.seed,
                                   score_threshold=args.score_threshold, threads=args.threads)
        command = "stereo-depth train-nearest " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [])
        _, meta = tn.train(out, data_cfg, net_cfg, train_cfg, train_data, val_data, resume=args.resume,
                           progress=progress, extra_meta={"command": command.strip()}, init=args.init)
        model_path = out / "model.pt"
        print(f"model written to {model_path}: val IoU {meta['metrics']['val_iou']:.3f} "
              f"Dice {meta['metrics']['val_dice']:.3f}")
    else:
        model_path = args.evaluate_only
        val_data = dataset("val", tn.VAL_SEED0, args.val_scenes)

    if args.compare or args.evaluate_only is not None:
        test_data = dataset("test", tn.TEST_SEED0, args.test_scenes)
        result = tn.compare(model_path, test_data, data_cfg, args.score_threshold, tune_data=val_data)
        table = tn.format_table(result)
        print(table)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=2))
        (out / "compare.md").write_text(table + "\n")
        if args.evaluate_only is None:
            _attach_comparison(model_path, result)
    if args.install and args.evaluate_only is None:
        target = default_model_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, target)
        print(f"installed {target}")
    return 0


def _attach_comparison(model_path: Path, result: dict) -> None:
    """Record the held-out comparison in the checkpoint's metrics (self-describing weights)."""
    from stereo_depth_ros.estimator import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(model_path)
    ckpt.pop("path", None)
    ckpt["meta"].setdefault("metrics", {})["held_out_comparison"] = result
    save_checkpoint(ckpt, model_path)
