"""Training and evaluation of the nearest-object U-Net on the package's synthetic scenes.

Data: ``render_random`` scenes rendered at ``render_scale`` x the training size (the node gets
full-resolution disparity and resizes it, so training does the same), the disparity from a
stereo backend (``sgbm``, or ``model:PATH`` for a trained stereo checkpoint) with the exact
disparity mixed in as augmentation (``gt_fraction`` of the samples), labels from the
instance ids and depth (``nearest.nearest_object_label``). Seeds: training scenes start at
``TRAIN_SEED0``, validation at ``VAL_SEED0``, the held-out comparison at ``TEST_SEED0``; the
ranges never overlap.

Loss: soft Dice + BCE. Validation after every epoch: IoU and Dice of the post-processed mask
(score threshold, largest component, min area), ``evaluation.metrics.segmentation_metrics``
averaged over frames. Checkpoints: ``nearest.save_unet_checkpoint`` (plain data, loads with
weights_only=True); ``last.pt`` additionally holds the optimizer for ``--resume``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stereo_depth_ros.evaluation.metrics import segmentation_metrics
from stereo_depth_ros.geometry import StereoGeometry
from stereo_depth_ros.models.unet import UNet, UNetConfig
from stereo_depth_ros.nearest import (
    NearestObjectDetector,
    largest_component,
    nearest_object_label,
    resize_disparity,
    save_unet_checkpoint,
    unet_input,
)

TRAIN_SEED0 = 0
VAL_SEED0 = 1_000_000
TEST_SEED0 = 2_000_000
CACHE_VERSION = 1


@dataclass(frozen=True)
class NearestDataConfig:
    """How samples are made. Sizes are the network's input; rendering is render_scale x that."""

    width: int = 160
    height: int = 120
    render_scale: int = 2
    max_disparity: float = 128.0  # at 640 px width (the generator's default rig), scaled with width
    disparity_source: str = "sgbm"  # "gt", "sgbm" or "model:PATH"
    min_area_fraction: float = 0.004  # of the image, for a label and for a detection
    photometric: bool = True

    @property
    def render_size(self) -> tuple[int, int]:
        return self.width * self.render_scale, self.height * self.render_scale

    @property
    def min_area(self) -> int:
        return max(1, round(self.min_area_fraction * self.width * self.height))

    def max_disparity_at(self, width: int) -> float:
        return self.max_disparity * width / 640.0


def make_rig(width: int, height: int) -> Any:
    """The generator's default rig (640x480, fx 400, B 0.12 m) scaled to ``width`` x ``height``."""
    from stereo_depth_ros.data.synthetic import StereoRig

    s = width / 640.0
    return StereoRig(
        width=width,
        height=height,
        fx=400.0 * s,
        fy=400.0 * s,
        cx=(width - 1) / 2.0,
        cy=(height - 1) / 2.0,
        baseline=0.12,
    )


def make_disparity_source(
    name: str, max_disparity: float
) -> Callable[[np.ndarray, np.ndarray, StereoGeometry], np.ndarray] | None:
    """None for "gt"; else a function (left, right, geometry) -> published disparity (NaN invalid).
    ``max_disparity``: the largest disparity of the scenes (SGBM's search range covers it)."""
    if name == "gt":
        return None
    from stereo_depth_ros.backends import make_backend
    from stereo_depth_ros.geometry import shift_to_disparity

    search = max(32, 16 * math.ceil(max_disparity / 16))
    if name == "sgbm":
        backend = make_backend(
            "sgbm",
            disparity_range=search,
            correlation_window_size=7,
            P1=8 * 49,
            P2=32 * 49,
            speckle_size=50,
            uniqueness_ratio=10.0,
        )
    elif name.startswith("model:"):
        backend = make_backend("learned", checkpoint=name.split(":", 1)[1], device="cpu",
                               max_disparity=search)
    else:
        raise ValueError(f"unknown disparity source {name!r}: use gt, sgbm or model:PATH")

    def compute(left: np.ndarray, right: np.ndarray, geometry: StereoGeometry) -> np.ndarray:
        shift = backend.compute(left, right).shift.detach().float().cpu().numpy()
        return shift_to_disparity(shift, geometry).astype(np.float32)

    return compute


def make_sample(seed: int, cfg: NearestDataConfig, source: Callable | None) -> dict[str, np.ndarray]:
    """One training sample at the network size: left (H,W,3) uint8, label (H,W) bool,
    disp_gt / disp_pred (H,W) float16 normalized by the max disparity (NaN invalid)."""
    from stereo_depth_ros.data.synthetic import render_random

    rw, rh = cfg.render_size
    rig = make_rig(rw, rh)
    max_d = cfg.max_disparity_at(rw)
    s = render_random(seed, rig, max_disparity=max_d, photometric=cfg.photometric)
    label, _ = nearest_object_label(s.instances, s.depth, min_area=cfg.min_area * cfg.render_scale**2)
    size = (cfg.width, cfg.height)
    gt = resize_disparity(s.disparity / np.float32(max_d), size)
    pred = gt if source is None else resize_disparity(source(s.left, s.right, rig.geometry()) / max_d, size)
    left = cv2.resize(s.left, size, interpolation=cv2.INTER_AREA)
    label_small = cv2.resize(label.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    return {
        "left": left,
        "label": label_small,
        "disp_gt": gt.astype(np.float16),
        "disp_pred": pred.astype(np.float16),
    }


def build_dataset(
    seeds: Sequence[int], cfg: NearestDataConfig, cache: Path | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """Stacked samples for ``seeds`` (cached as .npz keyed by the config and seed range)."""
    if cache is not None and cache.is_file():
        with np.load(cache) as f:
            meta = json.loads(str(f["meta"]))
            if meta == {"config": asdict(cfg), "seeds": [int(seeds[0]), len(seeds)], "v": CACHE_VERSION}:
                return {k: f[k] for k in ("left", "label", "disp_gt", "disp_pred")}
    source = make_disparity_source(cfg.disparity_source, cfg.max_disparity_at(cfg.render_size[0]))
    from tqdm import tqdm

    samples = [
        make_sample(int(s), cfg, source)
        for s in tqdm(seeds, desc=f"rendering {len(seeds)} scenes", disable=not progress)
    ]
    data = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(cfg), "seeds": [int(seeds[0]), len(seeds)], "v": CACHE_VERSION}
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez(tmp, meta=json.dumps(meta), **data)
        tmp.replace(cache)
    return data


# --------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    gt_fraction: float = 0.3  # share of samples fed the exact disparity instead of the backend's
    bce_weight: float = 0.5
    seed: int = 0
    score_threshold: float = 0.5
    threads: int = 2


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per sample, averaged (an empty target with an empty prediction scores 0)."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, bce_weight: float) -> torch.Tensor:
    return dice_loss(logits, target) + bce_weight * F.binary_cross_entropy_with_logits(logits, target)


def make_batch(
    data: dict[str, np.ndarray],
    index: np.ndarray,
    net_cfg: UNetConfig,
    gt_fraction: float,
    rng: np.random.Generator,
    augment: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, C, H, W) and targets (B, 1, H, W) with augmentation: exact disparity for
    ``gt_fraction`` of the samples (with noise and holes), normalization scale jitter (the
    depth node's max_disparity need not be the generator's), brightness, horizontal flip."""
    xs, ys = [], []
    for i in index:
        left = data["left"][i]
        label = data["label"][i]
        use_gt = augment and rng.random() < gt_fraction
        d = data["disp_gt" if use_gt else "disp_pred"][i].astype(np.float32)
        if augment:
            if use_gt:
                d = d * (1 + rng.normal(0, 0.02, d.shape)).astype(np.float32)
                holes = rng.random(d.shape) < rng.uniform(0, 0.1)
                d = np.where(holes, np.nan, d)
            d = d / np.float32(rng.uniform(0.75, 1.33))
            gain = rng.uniform(0.7, 1.3)
            left = np.clip(left.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            if rng.random() < 0.5:
                left, d, label = left[:, ::-1], d[:, ::-1], label[:, ::-1]
        xs.append(unet_input(np.ascontiguousarray(left), np.ascontiguousarray(d), 1.0, net_cfg))
        ys.append(np.ascontiguousarray(label)[None].astype(np.float32))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


@torch.no_grad()
def validate(
    net: UNet, data: dict[str, np.ndarray], score_threshold: float, min_area: int, batch_size: int = 32
) -> dict[str, float]:
    """Mean IoU / Dice over frames of the post-processed mask vs the label (backend disparity)."""
    net.eval()
    ious, dices = [], []
    n = len(data["label"])
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        x, _ = make_batch(data, idx, net.config, 0.0, np.random.default_rng(0), augment=False)
        prob = torch.sigmoid(net(x))[:, 0].numpy()
        for p, i in zip(prob, idx, strict=True):
            mask = largest_component(p > score_threshold, min_area)
            m = segmentation_metrics(mask, data["label"][i])
            ious.append(m["iou"])
            dices.append(m["dice"])
    net.train()
    return {"iou": float(np.mean(ious)), "dice": float(np.mean(dices)), "frames": n}


def train(
    out_dir: Path,
    data_cfg: NearestDataConfig,
    net_cfg: UNetConfig,
    train_cfg: TrainConfig,
    train_data: dict[str, np.ndarray],
    val_data: dict[str, np.ndarray],
    resume: bool = False,
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    init: Path | None = None,
) -> tuple[UNet, dict[str, Any]]:
    """Train; writes out_dir/last.pt (resumable) and out_dir/model.pt (final weights only).
    ``init``: start from this U-Net checkpoint's weights (same architecture), a new schedule."""
    from tqdm import tqdm

    torch.set_num_threads(max(1, train_cfg.threads))
    torch.manual_seed(train_cfg.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = UNet(net_cfg)
    init_meta: dict[str, Any] = {}
    if init is not None:
        from stereo_depth_ros.nearest import load_unet_checkpoint

        start, ckpt = load_unet_checkpoint(init)
        if start.config != net_cfg:
            raise ValueError(f"--init {init} has architecture {start.config}, not {net_cfg}")
        net.load_state_dict(start.state_dict())
        init_meta = {"initialized_from": {"path": str(init), "steps": ckpt["meta"].get("steps"),
                                          "command": ckpt["meta"].get("command"),
                                          "total_steps": ckpt["meta"].get("total_steps",
                                                                          ckpt["meta"].get("steps"))}}
    opt = torch.optim.AdamW(net.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=train_cfg.lr, total_steps=max(1, train_cfg.steps), pct_start=0.1
    )
    step, history = 0, []
    last = out_dir / "last.pt"
    if resume and last.is_file():
        from stereo_depth_ros.estimator import load_checkpoint

        state = load_checkpoint(last)
        ts = state.get("train_state", {})
        if state["config"] != net_cfg.to_dict() or ts.get("train_config") != asdict(train_cfg):
            raise ValueError(f"{last} was written with a different configuration; not resuming from it")
        net.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, history = int(ts["step"]), list(state["meta"]["history"])
        torch.set_rng_state(ts["torch_rng"])
        log(f"resumed from {last} at step {step}")
    n = len(train_data["label"])
    steps_per_epoch = max(1, math.ceil(n / train_cfg.batch_size))
    meta_base = {
        "task": "nearest-object segmentation",
        "input_size": [data_cfg.width, data_cfg.height],
        "inputs": "left image + disparity / max_disparity at the same resolution "
        "(DisparityImage.max_disparity)" + (" + validity" if net_cfg.use_valid else ""),
        "training_data": {
            "generator": "stereo_depth_ros.data.synthetic.render_random",
            "train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + n],
            "val_seeds": [VAL_SEED0, VAL_SEED0 + len(val_data["label"])],
            **asdict(data_cfg),
            "gt_fraction": train_cfg.gt_fraction,
        },
        "train_config": asdict(train_cfg),
        **init_meta,
        **(extra_meta or {}),
    }
    net.train()
    bar = tqdm(total=train_cfg.steps, initial=step, desc="train-nearest", disable=not progress)
    t0, running = time.time(), []
    while step < train_cfg.steps:
        rng = np.random.default_rng((train_cfg.seed, step))
        idx = rng.choice(n, size=min(train_cfg.batch_size, n), replace=False)
        x, y = make_batch(train_data, idx, net_cfg, train_cfg.gt_fraction, rng)
        loss = segmentation_loss(net(x), y, train_cfg.bce_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
        if step % steps_per_epoch == 0 or step == train_cfg.steps:
            val = validate(net, val_data, train_cfg.score_threshold, data_cfg.min_area)
            entry = {
                "step": step,
                "epoch": round(step / steps_per_epoch, 2),
                "loss": float(np.mean(running[-steps_per_epoch:])),
                "val_iou": val["iou"],
                "val_dice": val["dice"],
                "elapsed_s": round(time.time() - t0, 1),
            }
            history.append(entry)
            bar.write(
                f"step {step} epoch {entry['epoch']:.1f}: loss {entry['loss']:.4f} "
                f"val IoU {val['iou']:.3f} Dice {val['dice']:.3f}"
            )
            save_unet_checkpoint(
                last,
                net,
                {**meta_base, "steps": step, "history": history},
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                train_state={
                    "step": step,
                    "train_config": asdict(train_cfg),
                    "torch_rng": torch.get_rng_state(),
                },
            )
    bar.close()
    final = history[-1] if history else {}
    before = int(init_meta.get("initialized_from", {}).get("total_steps") or 0)
    meta = {
        **meta_base,
        "steps": step,
        "total_steps": before + step,
        "history": history,
        "metrics": {
            "val_iou": final.get("val_iou"),
            "val_dice": final.get("val_dice"),
            "val_frames": len(val_data["label"]),
        },
    }
    save_unet_checkpoint(out_dir / "model.pt", net, meta)
    return net.eval(), meta


# -------------------------------------------------------------------------- comparison


def _frames_metrics(masks: list[np.ndarray], labels: np.ndarray) -> dict[str, float]:
    per = [segmentation_metrics(m, g) for m, g in zip(masks, labels, strict=True)]
    return {"iou": float(np.mean([p["iou"] for p in per])), "dice": float(np.mean([p["dice"] for p in per]))}


def compare(
    model_path: Path,
    data: dict[str, np.ndarray],
    data_cfg: NearestDataConfig,
    score_threshold: float = 0.5,
    bands: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3),
    tune_data: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """U-Net vs threshold baseline on ``data`` (held-out scenes), through NearestObjectDetector
    (the node's code path), for the backend disparity and for the exact disparity. The
    baseline's band is chosen on ``tune_data`` (validation scenes) to give it its best shot."""
    w, h = data_cfg.width, data_cfg.height
    rig = make_rig(w, h)
    geometry = rig.geometry()
    max_d = data_cfg.max_disparity_at(w)
    min_area = data_cfg.min_area
    unet = NearestObjectDetector(
        "unet",
        model=model_path,
        device="cpu",
        score_threshold=score_threshold,
        min_area=min_area,
        max_range=1e6,
    )

    def run(det: NearestObjectDetector, d_all: np.ndarray, left_all: np.ndarray) -> list[np.ndarray]:
        masks = []
        for left, dn in zip(left_all, d_all, strict=True):
            d = dn.astype(np.float32) * np.float32(max_d)
            if not np.any(np.isfinite(d) & (d > 0)):
                masks.append(np.zeros((h, w), bool))
                continue
            masks.append(det.detect(left, d, geometry, max_disparity=max_d).mask)
        return masks

    band_scores = {}
    tune = tune_data if tune_data is not None else data
    for band in bands:
        det = NearestObjectDetector("threshold", min_area=min_area, max_range=1e6, band=band)
        band_scores[band] = _frames_metrics(run(det, tune["disp_pred"], tune["left"]), tune["label"])["iou"]
    best_band = max(band_scores, key=band_scores.get)
    baseline = NearestObjectDetector("threshold", min_area=min_area, max_range=1e6, band=best_band)
    rows = []
    for source, key in ((data_cfg.disparity_source, "disp_pred"), ("gt", "disp_gt")):
        for name, det in (("unet", unet), ("threshold", baseline)):
            m = _frames_metrics(run(det, data[key], data["left"]), data["label"])
            rows.append({"method": name, "disparity": source, **m})
    return {
        "frames": len(data["label"]),
        "rows": rows,
        "baseline_band": best_band,
        "band_scores": {str(k): v for k, v in band_scores.items()},
        "model": str(model_path),
        "score_threshold": score_threshold,
        "min_area": min_area,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"held-out synthetic scenes: {result['frames']} (seeds from {TEST_SEED0}), "
        f"baseline band {result['baseline_band']} (best on validation scenes)",
        "| method | disparity | IoU | Dice |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['disparity']} | {r['iou']:.3f} | {r['dice']:.3f} |")
    return "\n".join(lines)
