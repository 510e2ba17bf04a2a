"""Training data: synthetic scenes (rendered on the fly or from a disk cache) and real pairs.

Every training sample is addressed by a global sample index ``k`` (step * batch + j): the
scene it shows and its augmentation follow from (seed, k) alone, so a run is deterministic
and resumes at the exact same sample stream whatever the worker count.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_depth_ros.options import from_options

CACHE_VERSION = 1


@dataclass
class SyntheticConfig:
    """Which synthetic scenes to draw from and how to render them."""

    seed_start: int = 0
    scenes: int = 1000
    width: int = 384
    height: int = 288
    fx: float | None = None  # None: the generator's default ~77 degree field of view
    baseline: float = 0.12
    # each scene draws its disparity bound in this range, so small disparities are well covered
    max_disparity: tuple[float, float] = (48.0, 128.0)
    photometric: bool = True
    cache_dir: str | None = None
    # Growing pool (for a cache still being rendered): sample k draws uniformly from the first
    # min(scenes, initial_pool + k * pool_growth) scenes. None: every epoch visits all scenes.
    initial_pool: int | None = None
    pool_growth: float = 0.0
    # photographs as textures: None, "skimage" (scikit-image's sample photos) or a folder
    photos: str | None = None
    photo_fraction: float = 0.4

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticConfig:
        d = dict(d)
        md = d.get("max_disparity")
        if isinstance(md, int | float):
            d["max_disparity"] = (float(md), float(md))
        elif md is not None:
            d["max_disparity"] = (float(md[0]), float(md[1]))
        return from_options(cls, d, "synthetic data")

    def describe(self) -> str:
        lo, hi = self.max_disparity
        return (
            f"synthetic generator v{generator_version()} seeds "
            f"[{self.seed_start}, {self.seed_start + self.scenes}) at "
            f"{self.width}x{self.height}, max disparity per scene U({lo:g}, {hi:g}), "
            f"photometric={self.photometric}"
            + (f", photos {self.photos} for {self.photo_fraction:g} of the textures" if self.photos else "")
        )


def generator_version() -> int:
    """The synthetic generator's version: cached scenes of another version are not reused."""
    from stereo_depth_ros.data import synthetic

    return int(getattr(synthetic, "GENERATOR_VERSION", 0))


def _scene_max_disparity(cfg: SyntheticConfig, seed: int) -> float:
    lo, hi = cfg.max_disparity
    return float(np.random.default_rng([seed, 77]).uniform(lo, hi)) if hi > lo else lo


_active_photos: tuple[str | None, float] = (None, 0.0)


def _use_photos_of(cfg: SyntheticConfig) -> None:
    """Point the generator's texture bank (process-wide) at ``cfg``'s photographs, once."""
    global _active_photos
    want = (cfg.photos, cfg.photo_fraction if cfg.photos else 0.0)
    if want != _active_photos:
        from stereo_depth_ros.data import textures

        textures.use_photos(cfg.photos, cfg.photo_fraction)
        _active_photos = want


def render_scene(cfg: SyntheticConfig, seed: int) -> dict[str, np.ndarray]:
    """left, right (H, W, 3) uint8 and disparity (H, W) float32 for scene ``seed``; uses the cache."""
    path = None
    if cfg.cache_dir:
        lo, hi = cfg.max_disparity
        sub = f"v{CACHE_VERSION}g{generator_version()}_{cfg.width}x{cfg.height}_f{cfg.fx or 'def'}"
        sub += f"_b{cfg.baseline}_d{lo:g}-{hi:g}"
        sub += "_ph" if cfg.photometric else ""
        sub += f"_photos-{Path(cfg.photos).name}{cfg.photo_fraction:g}" if cfg.photos else ""
        path = Path(cfg.cache_dir) / sub / f"{seed:07d}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in ("left", "right", "disparity")}
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a torn cache file (interrupted writer): render it again
    from stereo_depth_ros.data.synthetic import StereoRig, render_random

    _use_photos_of(cfg)
    rig = StereoRig.for_size(cfg.width, cfg.height, cfg.fx, cfg.baseline)
    s = render_random(seed, rig, max_disparity=_scene_max_disparity(cfg, seed), photometric=cfg.photometric)
    out = {"left": s.left, "right": s.right, "disparity": s.disparity.astype(np.float32)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)
    return out


@dataclass
class AugmentConfig:
    crop: tuple[int, int] | None = (320, 240)  # (width, height); None = whole image
    color: float = 0.2  # strength of shared brightness/contrast/saturation/hue-ish jitter
    asymmetric: float = 0.05  # strength of independent left/right gain, gamma and noise
    vflip: float = 0.0  # probability of flipping both views vertically (keeps the geometry)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        d = dict(d or {})
        if d.get("crop") is not None:
            d["crop"] = (int(d["crop"][0]), int(d["crop"][1]))
        return from_options(cls, d, "augmentation")


def _jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Shared colour jitter on an (H, W, 3) float image."""
    if strength <= 0:
        return img
    b = rng.uniform(1 - strength, 1 + strength)
    c = rng.uniform(1 - strength, 1 + strength)
    s = rng.uniform(1 - strength, 1 + strength)
    mean = img.mean()
    img = (img - mean) * c + mean * b
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * s
    tint = 1.0 + rng.uniform(-strength / 4, strength / 4, 3).astype(np.float32)
    return img * tint


def augment_pair(
    left: np.ndarray, right: np.ndarray, disp: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop (same window in both views), colour jitter and asymmetric photometrics; float32 out."""
    h, w = disp.shape
    if cfg.crop is not None:
        cw, ch = cfg.crop
        if cw > w or ch > h:
            raise ValueError(f"crop {cw}x{ch} is larger than the {w}x{h} images")
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        left = left[y0 : y0 + ch, x0 : x0 + cw]
        right = right[y0 : y0 + ch, x0 : x0 + cw]
        disp = disp[y0 : y0 + ch, x0 : x0 + cw]
    lf = left.astype(np.float32) / 255.0
    rf = right.astype(np.float32) / 255.0
    if cfg.color > 0:
        state = rng.bit_generator.state
        lf = _jitter(lf, rng, cfg.color)
        rng.bit_generator.state = state  # the same jitter for both views
        rf = _jitter(rf, rng, cfg.color)
    if cfg.asymmetric > 0:
        a = cfg.asymmetric
        for_views = []
        for img in (lf, rf):
            gain = rng.uniform(1 - a, 1 + a, 3).astype(np.float32)
            gamma = rng.uniform(1 - a, 1 + a)
            img = np.clip(img * gain, 0, 1) ** gamma
            img = img + rng.normal(0, a / 4, img.shape).astype(np.float32)
            for_views.append(img)
        lf, rf = for_views
    if cfg.vflip > 0 and rng.random() < cfg.vflip:
        lf, rf, disp = lf[::-1], rf[::-1], disp[::-1]
    return (
        np.ascontiguousarray(np.clip(lf, 0, 1), dtype=np.float32),
        np.ascontiguousarray(np.clip(rf, 0, 1), dtype=np.float32),
        np.ascontiguousarray(disp, dtype=np.float32),
    )


def to_tensors(left: np.ndarray, right: np.ndarray, disp: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        "left": torch.from_numpy(left).permute(2, 0, 1).contiguous(),
        "right": torch.from_numpy(right).permute(2, 0, 1).contiguous(),
        "disparity": torch.from_numpy(disp),
    }


class SyntheticStereoDataset(Dataset):
    """Sample ``k`` -> an augmented crop of scene ``seed_start + perm_epoch(k)``.

    The dataset is indexed by the global sample index: epoch e = k // scenes visits every
    scene once in an order drawn from (seed, e). ``length`` bounds the indices (default:
    one epoch); the training loop asks for k = step * batch + j directly.
    """

    def __init__(
        self, synth: SyntheticConfig, augment: AugmentConfig | None, seed: int = 0, length: int | None = None
    ) -> None:
        self.synth = synth
        self.augment = augment
        self.seed = seed
        self.length = length if length is not None else synth.scenes
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def scene_seed(self, k: int) -> int:
        if self.synth.initial_pool is not None:
            pool = min(self.synth.scenes, self.synth.initial_pool + int(k * self.synth.pool_growth))
            return self.synth.seed_start + int(np.random.default_rng([self.seed, int(k), 13]).integers(pool))
        epoch, pos = divmod(int(k), self.synth.scenes)
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch, 11]).permutation(self.synth.scenes)
            self._perms = {epoch: perm}
        return self.synth.seed_start + int(perm[pos])

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < self.length:
            raise IndexError(f"sample {k} out of range [0, {self.length})")
        scene = render_scene(self.synth, self.scene_seed(k))
        if self.augment is None:
            left = scene["left"].astype(np.float32) / 255.0
            right = scene["right"].astype(np.float32) / 255.0
            return to_tensors(left, right, scene["disparity"])
        rng = np.random.default_rng([self.seed, int(k), 5])
        return to_tensors(*augment_pair(scene["left"], scene["right"], scene["disparity"], rng, self.augment))


class ReaderStereoDataset(Dataset):
    """Sample ``k`` -> an augmented crop of a pair from a dataset on disk (SceneFlow, KITTI, ...).

    ``kind``/``root`` go to :func:`stereo_depth_ros.data.readers.open_dataset`; pixels without
    ground truth (NaN) are ignored by the losses. Items are drawn by (seed, k), like
    :class:`SyntheticStereoDataset`.
    """

    def __init__(
        self, kind: str, root: str, augment: AugmentConfig, seed: int = 0, length: int | None = None
    ) -> None:
        from stereo_depth_ros.data.readers import open_dataset

        self.dataset = open_dataset(kind, root)
        self.kind, self.root = kind, root
        self.augment = augment
        self.seed = seed
        self.length = length if length is not None else len(self.dataset)

    def __len__(self) -> int:
        return self.length

    def describe(self) -> str:
        return f"{self.kind} dataset at {self.root} ({len(self.dataset)} pairs)"

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < self.length:
            raise IndexError(f"sample {k} out of range [0, {self.length})")
        rng = np.random.default_rng([self.seed, int(k), 7])
        rec = self.dataset[int(rng.integers(len(self.dataset)))]
        if rec.disparity is None:
            raise ValueError(f"{self.kind} item {rec.name} has no ground-truth disparity to train on")
        disp = np.where(np.isfinite(rec.disparity), rec.disparity, np.nan).astype(np.float32)
        return to_tensors(*augment_pair(rec.left, rec.right, disp, rng, self.augment))


class ValidationScenes(Dataset):
    """Whole held-out synthetic scenes (no augmentation), seeds [seed_start, seed_start + scenes)."""

    def __init__(self, synth: SyntheticConfig) -> None:
        self.synth = synth

    def __len__(self) -> int:
        return self.synth.scenes

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.synth.scenes:
            raise IndexError(f"validation scene {i} out of range [0, {self.synth.scenes})")
        scene = render_scene(self.synth, self.synth.seed_start + i)
        left = scene["left"].astype(np.float32) / 255.0
        right = scene["right"].astype(np.float32) / 255.0
        return to_tensors(left, right, scene["disparity"])


def load_real_pairs(root: str | Path) -> list[dict[str, Any]]:
    """Real pairs with GT under ``root`` (Middlebury layout) as dicts of numpy arrays + name
    (+ ``ndisp``, the scene's disparity bound, when its calib.txt gives one).

    Missing folders give an empty list.
    """
    from stereo_depth_ros.data import middlebury

    root = Path(root)
    if not root.is_dir():
        return []
    pairs = []
    for folder in sorted(p.parent for p in root.rglob("disp0GT.pfm")):
        rec = middlebury.read_scene(folder)
        pair = {"name": folder.name, "left": rec.left, "right": rec.right, "disparity": rec.disparity}
        ndisp = (rec.calib or {}).get("ndisp")
        if isinstance(ndisp, int | float) and ndisp > 0:
            pair["ndisp"] = int(ndisp)
        pairs.append(pair)
    return pairs


def _prerender_main() -> None:
    """python -m stereo_depth_ros.training.data --cache DIR --start S --count N [--width W ...]"""
    p = argparse.ArgumentParser(description="render synthetic training scenes into a disk cache")
    p.add_argument("--cache", required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--stride", type=int, default=1, help="render seeds start, start + stride, ...")
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--height", type=int, default=288)
    p.add_argument("--min-disparity-bound", type=float, default=48.0)
    p.add_argument("--max-disparity-bound", type=float, default=128.0)
    p.add_argument("--photos", default=None, help="'skimage' or a folder of photographs used as textures")
    p.add_argument("--photo-fraction", type=float, default=0.4)
    a = p.parse_args()
    cfg = SyntheticConfig(
        seed_start=a.start,
        scenes=a.count,
        width=a.width,
        height=a.height,
        max_disparity=(a.min_disparity_bound, a.max_disparity_bound),
        cache_dir=a.cache,
        photos=a.photos,
        photo_fraction=a.photo_fraction,
    )
    t0 = time.time()
    for i in range(a.count):
        render_scene(cfg, a.start + i * a.stride)
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{a.count} scenes, {(time.time() - t0) / (i + 1):.2f} s each", flush=True)


if __name__ == "__main__":
    _prerender_main()
