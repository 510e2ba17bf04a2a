"""Training on real pairs with ground truth (``../shared/data/real/train``), mixed with synthetic ones.

Only folders meant for training may be given here: the validation pairs (``real/val``) are
for reporting and are refused by name, so that a config cannot train on them by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_depth_ros.options import from_options
from stereo_depth_ros.training.data import AugmentConfig, augment_pair, load_real_pairs, to_tensors


@dataclass
class RealTrainConfig:
    root: str
    fraction: float = 0.3  # share of training samples drawn from the real pairs
    scale: tuple[float, float] = (0.4, 1.0)  # each sample resizes its pair by U(lo, hi) first

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RealTrainConfig:
        d = dict(d)
        if "root" not in d:
            raise ValueError("data.train_real needs a root folder")
        if d.get("scale") is not None:
            d["scale"] = (float(d["scale"][0]), float(d["scale"][1]))
        cfg = from_options(cls, d, "data.train_real")
        if not 0.0 < cfg.fraction <= 1.0:
            raise ValueError(f"data.train_real.fraction must be in (0, 1], got {cfg.fraction}")
        if Path(cfg.root).name == "val" or "/val/" in f"{Path(cfg.root).as_posix()}/":
            raise ValueError(f"{cfg.root}: validation pairs are for reporting only, never for training")
        return cfg


def resize_pair(left: np.ndarray, right: np.ndarray, disp: np.ndarray, scale: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both views and the disparity resized by ``scale`` (disparity values scaled too; NaN kept)."""
    if scale == 1.0:
        return left, right, disp
    h, w = disp.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    d = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST) * (size[0] / w)
    return cv2.resize(left, size, interpolation=interp), cv2.resize(right, size, interpolation=interp), d


class RealPairsDataset(Dataset):
    """Sample ``k`` -> a random scene of ``root``, resized by a random scale, augmented and cropped."""

    def __init__(self, cfg: RealTrainConfig, augment: AugmentConfig, seed: int = 0, length: int = 1) -> None:
        self.cfg = cfg
        self.augment = augment
        self.seed = seed
        self.length = length
        self.pairs = load_real_pairs(cfg.root)
        if not self.pairs:
            raise ValueError(f"{cfg.root}: no real pairs (im0.png, im1.png, disp0GT.pfm) found")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(k), 23])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        h, w = pair["disparity"].shape
        lo, hi = self.cfg.scale
        if self.augment.crop is not None:  # never smaller than the crop
            lo = max(lo, self.augment.crop[0] / w, self.augment.crop[1] / h)
        scale = float(rng.uniform(lo, max(lo, hi)))
        left, right, disp = resize_pair(pair["left"], pair["right"], pair["disparity"], scale)
        return to_tensors(*augment_pair(left, right, disp, rng, self.augment))


class MixedDataset(Dataset):
    """Sample ``k`` comes from ``second`` with probability ``fraction`` (drawn from (seed, k)),
    else from ``first``."""

    def __init__(self, first: Dataset, second: Dataset, fraction: float, seed: int = 0) -> None:
        self.first, self.second = first, second
        self.fraction = fraction
        self.seed = seed

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if np.random.default_rng([self.seed, int(k), 29]).random() < self.fraction:
            return self.second[k]
        return self.first[k]
