"""Self-supervised fine-tuning on unlabeled rectified stereo pairs (a user's own camera).

Loss per pair (Godard et al. 2017 style): photometric SSIM + L1 between the left image and
the right image warped by the predicted left disparity, edge-aware smoothness of the
disparity, and left-right consistency against the right-view disparity (predicted by running
the network on the mirrored, swapped pair). No ground truth is needed.

Pairs come from a folder (``left/*.png`` + ``right/*.png`` matched by file name, or
Middlebury-style ``*/im0.png`` + ``im1.png``) or from a rosbag2 (left/right image topics,
paired by stamp through :mod:`stereo_depth_ros.evaluation.bag_io`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_depth_ros.estimator import (
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    select_device,
)
from stereo_depth_ros.training import losses

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


class FinetuneError(RuntimeError):
    """Unusable fine-tuning input; the message says what and where."""


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FinetuneError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def folder_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(left, right) image paths under ``root``; FinetuneError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise FinetuneError(f"{root} is not a directory")
    pairs: list[tuple[Path, Path]] = []
    left_dir, right_dir = root / "left", root / "right"
    if left_dir.is_dir() and right_dir.is_dir():
        for left in sorted(p for p in left_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            right = right_dir / left.name
            if right.is_file():
                pairs.append((left, right))
    for im0 in sorted(root.rglob("im0.png")):
        if (im0.parent / "im1.png").is_file():
            pairs.append((im0, im0.parent / "im1.png"))
    if not pairs:
        raise FinetuneError(
            f"no stereo pairs in {root}: expected left/<name> + right/<name> images or */im0.png + im1.png"
        )
    return pairs


def bag_pairs(
    bag_path: str | Path, left_topic: str, right_topic: str, limit: int | None = None
) -> list[dict]:
    """Decoded (left, right) RGB frames of a rosbag2, paired by header stamp."""
    from stereo_depth_ros.evaluation import bag_io

    topics = bag_io.StereoTopics(left=left_topic, right=right_topic)
    frames = []
    try:
        with bag_io.open_bag(bag_path) as bag:
            for frame in bag_io.stereo_frames(bag, topics, limit=limit):
                frames.append(
                    {"left": bag_io.image_to_rgb(frame.left), "right": bag_io.image_to_rgb(frame.right)}
                )
    except bag_io.BagError as exc:
        raise FinetuneError(str(exc)) from None
    if not frames:
        raise FinetuneError(f"{bag_path}: no stereo pairs on {left_topic} / {right_topic}")
    return frames


class UnlabeledPairs(torch.utils.data.Dataset):
    """Random crops of unlabeled pairs (paths or in-memory arrays); sample k is seeded by (seed, k)."""

    def __init__(self, pairs: list, crop: tuple[int, int] | None, seed: int = 0) -> None:
        self.pairs = pairs
        self.crop = crop
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.pairs[i % len(self.pairs)]
        if isinstance(item, dict):
            left, right = item["left"], item["right"]
        else:
            left, right = _read_rgb(Path(item[0])), _read_rgb(Path(item[1]))
        if left.shape != right.shape:
            raise FinetuneError(f"pair {i}: left {left.shape} and right {right.shape} differ in size")
        return left, right

    def sample(self, k: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, k])
        left, right = self.load(int(rng.integers(len(self.pairs))))
        h, w = left.shape[:2]
        if self.crop is not None:
            cw, ch = min(self.crop[0], w), min(self.crop[1], h)
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            left, right = left[y0 : y0 + ch, x0 : x0 + cw], right[y0 : y0 + ch, x0 : x0 + cw]

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0

        return {"left": t(left), "right": t(right)}

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return self.sample(k)


@dataclass
class FinetuneConfig:
    steps: int = 500
    batch_size: int = 2
    lr: float = 1e-4
    crop: tuple[int, int] | None = (320, 240)
    smoothness: float = 0.05
    lr_consistency: float = 0.5
    seed: int = 0
    num_threads: int = 2


def self_supervised_loss(
    model: nn.Module, left: torch.Tensor, right: torch.Tensor, cfg: FinetuneConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Photometric + smoothness + left-right consistency for a batch; returns (loss, parts)."""
    disp_l = model(left, right)["disparity"]
    photo = losses.photometric_loss(left, right, disp_l)
    smooth = losses.smoothness_loss(disp_l, left)
    total = photo + cfg.smoothness * smooth
    parts = {"photometric": float(photo.detach()), "smoothness": float(smooth.detach())}
    if cfg.lr_consistency > 0:
        # right-view disparity: the mirrored right image is a "left" view of the mirrored pair
        disp_r = model(right.flip(-1), left.flip(-1))["disparity"].flip(-1)
        lr = losses.left_right_consistency(disp_l, disp_r)
        total = total + cfg.lr_consistency * lr
        parts["lr_consistency"] = float(lr.detach())
    return total, parts


def finetune(
    checkpoint: str | Path,
    pairs: list,
    out_path: str | Path,
    cfg: FinetuneConfig,
    device: str = "auto",
    data_description: str = "",
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the checkpoint's network on ``pairs`` and save a new checkpoint at ``out_path``."""
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt).to(select_device(device))
    if not getattr(model, "self_supervised", True):
        raise ValueError(f"{ckpt['path']}: a {ckpt['arch']!r} network cannot be fine-tuned without ground "
                         "truth (its disparity comes from SGBM; what it learns, which SGBM values to keep, "
                         "needs ground truth): train it with `stereo-depth train` on pairs with ground truth")
    dev = next(model.parameters()).device
    # BatchNorm statistics stay those of the pre-training: small unlabeled batches would skew them
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    data = UnlabeledPairs(pairs, cfg.crop, cfg.seed)
    history = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="finetune", dynamic_ncols=True, mininterval=5)
    t0 = time.time()
    for step in range(cfg.steps):
        batch = [data.sample(step * cfg.batch_size + j) for j in range(cfg.batch_size)]
        try:
            left = torch.stack([b["left"] for b in batch]).to(dev)
            right = torch.stack([b["right"] for b in batch]).to(dev)
        except RuntimeError:  # pairs of different sizes: one at a time
            left, right = batch[0]["left"][None].to(dev), batch[0]["right"][None].to(dev)
        loss, parts = self_supervised_loss(model, left, right, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        history.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    if bar is not None:
        bar.close()
    meta = dict(ckpt["meta"])
    meta.update(
        {
            "finetuned_from": str(ckpt["path"]),
            "finetune_data": data_description,
            "finetune_steps": cfg.steps,
            "finetune_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
            "finetune_loss_first_last": [history[0], history[-1]] if history else [],
            "finetune_seconds": round(time.time() - t0, 1),
            "command": command or meta.get("command", ""),
        }
    )
    meta.pop("date", None)
    model.eval()
    save_checkpoint(make_checkpoint(model, ckpt["arch"], ckpt["config"], meta), out_path)
    return {
        "out": str(out_path),
        "loss_first": history[0] if history else None,
        "loss_last": history[-1] if history else None,
    }
