"""Guidance for training the ``guided`` network: SGBM hints computed on each augmented sample.

The hint is computed on the crop the network sees, after the photometric augmentation, exactly
as the backend computes it at run time. Its search range varies per sample (between the crop's
largest disparity and a few times that), because users set ranges with a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_depth_ros.guidance import HintParams, search_range, sgbm_hints
from stereo_depth_ros.options import from_options


@dataclass
class HintTraining:
    range_factor: tuple[float, float] = (1.0, 2.0)  # search range = crop's max disparity x U(lo, hi)
    min_range: int = 32
    max_range: int = 192

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> HintTraining:
        d = dict(d or {})
        if d.get("range_factor") is not None:
            d["range_factor"] = (float(d["range_factor"][0]), float(d["range_factor"][1]))
        return from_options(cls, d, "data.hint")

    def draw_range(self, gt: np.ndarray, rng: np.random.Generator) -> int:
        finite = gt[np.isfinite(gt)]
        top = float(finite.max()) if finite.size else float(self.min_range)
        wanted = top * rng.uniform(*self.range_factor)
        return int(np.clip(search_range(wanted), self.min_range, self.max_range))


class WithHints(Dataset):
    """Adds ``hint`` (2, H, W) float32 px (left and right view, NaN holes) to every sample."""

    def __init__(self, dataset: Dataset, params: HintParams, training: HintTraining, seed: int = 0) -> None:
        self.dataset = dataset
        self.params = params
        self.training = training
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[k]
        rng = np.random.default_rng([self.seed, int(k), 31])
        gt = sample["disparity"].numpy()
        rng_range = self.training.draw_range(gt, rng)
        left = sample["left"].permute(1, 2, 0).numpy()
        right = sample["right"].permute(1, 2, 0).numpy()
        sample["hint"] = torch.from_numpy(sgbm_hints(left, right, rng_range, self.params))
        return sample
