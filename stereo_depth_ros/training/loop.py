"""Config-driven supervised training of the stereo networks.

A run writes into ``out_dir``: ``last.pt`` (resumable: weights + optimizer + scheduler,
saved every ``ckpt_every`` steps and at the end, atomically), ``final.pt`` (weights and
metadata only, to ship), ``train_log.csv`` (step, losses, lr, speed) and ``val_log.csv``
(validation metrics per epoch). Validation runs on held-out synthetic seeds and on the real
pairs of ``data.val.real`` (validation only, never trained on).
"""

from __future__ import annotations

import copy
import csv
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from stereo_depth_ros.estimator import load_checkpoint, make_checkpoint, save_checkpoint, select_device
from stereo_depth_ros.evaluation.metrics import aggregate, stereo_metrics
from stereo_depth_ros.models.registry import build_model
from stereo_depth_ros.training import losses
from stereo_depth_ros.training.data import (
    AugmentConfig,
    ReaderStereoDataset,
    SyntheticConfig,
    SyntheticStereoDataset,
    ValidationScenes,
    load_real_pairs,
)
from stereo_depth_ros.training.hints import HintTraining, WithHints
from stereo_depth_ros.training.real_data import MixedDataset, RealPairsDataset, RealTrainConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "arch": "fast",
    "model": {},
    "data": {
        "train": {},
        "train_real": None,  # {root, fraction, scale}: real pairs mixed into training (real/train only)
        "hint": {},  # guided networks: how the SGBM hints of training samples are drawn
        "augment": {},
        "val": {"synthetic": {"seed_start": 1_000_000, "scenes": 8}, "real": None, "max_real": 4},
    },
    "train": {
        "steps": 1000,
        "batch_size": 4,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "schedule": "onecycle",  # onecycle | cosine | constant
        "warmup": 0.05,
        "grad_clip": 5.0,
        "seed": 0,
        "num_threads": 2,
        "num_workers": 0,
        "val_every": 500,  # steps per "epoch": validation + a kept checkpoint
        "ckpt_every": 100,
        "log_every": 10,
        "loss": "auto",  # auto: fast -> smooth L1 + confidence, dispnet -> scheduled multi-scale EPE
        "conf_weight": 0.1,
        # Wall-clock budget in seconds (None: off). Training progress is then
        # max(step / steps, elapsed / budget): the learning rate follows a warmup + cosine
        # curve over that progress and the run ends, fully annealed, when it reaches 1.
        "time_budget_s": None,
    },
}


class TrainingError(RuntimeError):
    """A training configuration or run that cannot proceed; the message says why."""


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a shipped config (``fast_default`` -> configs/fast_default.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = CONFIG_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if shipped.is_file():
        return shipped
    available = ", ".join(sorted(x.stem for x in CONFIG_DIR.glob("*.yaml")))
    raise TrainingError(f"training config {name_or_path} not found (shipped configs: {available})")


def load_config(name_or_path: str | Path | dict) -> dict[str, Any]:
    if isinstance(name_or_path, dict):
        raw = name_or_path
    else:
        path = resolve_config_path(name_or_path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainingError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise TrainingError(f"{path}: a training config must be a mapping")
    unknown = set(raw) - set(DEFAULTS) - {"description"}
    if unknown:
        raise TrainingError(f"unknown top-level config key(s): {', '.join(sorted(unknown))}")
    cfg = _merge(DEFAULTS, raw)
    unknown = set(cfg["train"]) - set(DEFAULTS["train"])
    if unknown:
        raise TrainingError(f"unknown train option(s): {', '.join(sorted(unknown))}")
    return cfg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_scheduler(opt: torch.optim.Optimizer, tc: dict, total: int):
    kind = tc["schedule"]
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=tc["lr"], total_steps=max(total, 2), pct_start=tc["warmup"], anneal_strategy="cos"
        )
    if kind == "cosine":
        warm = max(1, int(tc["warmup"] * total))

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, f)
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise TrainingError(f"unknown schedule {kind!r}: use onecycle, cosine or constant")


def budget_lr_factor(progress: float, warmup: float) -> float:
    """Warmup then cosine decay over ``progress`` in [0, 1] (the time-budget schedule)."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return 0.04 + 0.96 * progress / warmup
    return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / max(1e-9, 1 - warmup)))


def compute_loss(
    arch: str, out: dict, gt: torch.Tensor, step: int, total: int, tc: dict, max_disp: float
) -> tuple[torch.Tensor, dict[str, float]]:
    kind = tc["loss"]
    if kind == "auto":
        kind = {"fast": "fast", "guided": "guided", "dispnet": "dispnet", "dispnetc": "dispnet"}
        kind = kind.get(arch, "epe")
    if kind == "fast":
        return losses.fast_loss(out, gt, max_disp, tc["conf_weight"])
    if kind == "guided":
        return losses.guided_loss(out, gt, max_disp, tc["conf_weight"])
    if kind == "dispnet":
        w = losses.dispnet_weights(step, total, len(out["predictions"]))
        loss = losses.multiscale_epe(out["predictions"], gt, w, max_disp)
        return loss, {"epe_weighted": float(loss.detach())}
    if kind == "epe":
        loss = losses.multiscale_epe(out["predictions"], gt, [1.0] * len(out["predictions"]), max_disp)
        return loss, {"epe": float(loss.detach())}
    raise TrainingError(f"unknown loss {kind!r}: use auto, fast, guided, dispnet or epe")


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module, pairs, device: torch.device, max_disparity: float | None = None
) -> dict[str, float]:
    """Pixel-weighted stereo metrics of ``model`` over (left, right, disparity) samples."""
    was_training = model.training
    model.eval()
    frames = []
    for i in range(len(pairs)):
        s = pairs[i]
        left, right, gt = s["left"], s["right"], s["disparity"]
        if isinstance(left, np.ndarray):
            left = torch.from_numpy(left.astype(np.float32) / 255.0).permute(2, 0, 1)
            right = torch.from_numpy(right.astype(np.float32) / 255.0).permute(2, 0, 1)
            gt = torch.from_numpy(np.asarray(gt, np.float32))
        extra = {}
        if getattr(model, "takes_search_range", False):  # guided: SGBM over the pair's range
            extra["max_disparity"] = float(s.get("ndisp") or max_disparity or model.max_disparity)
        pred = model(left[None].to(device), right[None].to(device), **extra)["disparity"][0].float().cpu()
        gt = gt.clone()
        if max_disparity is not None:
            gt[gt > max_disparity] = float("nan")
        frames.append(stereo_metrics(pred, gt))
    model.train(was_training)
    return aggregate(frames)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    final_checkpoint: Path
    metrics: dict[str, Any]


class Trainer:
    def __init__(
        self, config: dict[str, Any], out_dir: str | Path, device: str = "auto", command: str | None = None
    ) -> None:
        self.cfg = config
        self.out_dir = Path(out_dir)
        self.device = select_device(device)
        self.command = command or " ".join(sys.argv)
        self.tc = config["train"]
        self.arch = config["arch"]
        train_cfg = dict(config["data"]["train"])
        # data.train.dataset: {kind: sceneflow|kitti|middlebury|eth3d|folder, root: DIR} trains on
        # a dataset on disk through the data package's readers instead of the generator
        self.reader = train_cfg.pop("dataset", None)
        self.train_synth = SyntheticConfig.from_dict(train_cfg)
        self.augment = AugmentConfig.from_dict(config["data"]["augment"])
        real = config["data"].get("train_real")
        self.train_real = RealTrainConfig.from_dict(real) if real else None
        self.hint_training = HintTraining.from_dict(config["data"].get("hint"))
        val = config["data"]["val"] or {}
        self.val_synth = SyntheticConfig.from_dict(val["synthetic"]) if val.get("synthetic") else None
        if (
            self.val_synth
            and self.val_synth.seed_start < self.train_synth.seed_start + self.train_synth.scenes
            and (self.val_synth.seed_start + self.val_synth.scenes > self.train_synth.seed_start)
        ):
            raise TrainingError("validation seeds overlap the training seeds; use a separate seed range")
        self.init_from: str | None = None  # a checkpoint whose weights start the run (fresh optimizer)
        self.real_root = val.get("real")
        self.max_real = int(val.get("max_real") or 0)

    def training_data_description(self) -> str:
        if self.reader:
            desc = f"{self.reader['kind']} dataset at {self.reader['root']}; augmentation {self.augment}"
        else:
            desc = self.train_synth.describe()
            if self.train_synth.initial_pool is not None:
                desc += (
                    f" (growing pool: sample k draws from the first min(scenes, "
                    f"{self.train_synth.initial_pool} + {self.train_synth.pool_growth:g} k) seeds)"
                )
            desc += f"; augmentation {self.augment}"
        if self.train_real:
            desc += (f"; real pairs under {self.train_real.root} for {self.train_real.fraction:g} of the "
                     f"samples, resized by U{self.train_real.scale}")
        if self.real_root:
            desc += f"; validation on the real pairs under {self.real_root}"
        return desc

    def _validate(self, model: torch.nn.Module) -> dict[str, float]:
        max_d = float(getattr(model, "max_disparity", 0)) or None
        metrics: dict[str, float] = {}
        if self.val_synth is not None:
            for k, v in evaluate_model(model, ValidationScenes(self.val_synth), self.device, max_d).items():
                metrics[f"synthetic_{k}"] = v
        if self.real_root:
            pairs = load_real_pairs(self.real_root)[: self.max_real or None]
            if pairs:
                for k, v in evaluate_model(model, pairs, self.device, max_d).items():
                    metrics[f"real_{k}"] = v
        return metrics

    def run(
        self,
        steps: int | None = None,
        resume: bool = False,
        progress: bool = True,
        stop_at: int | None = None,
    ) -> TrainResult:
        """Train to ``steps`` (default: the config's); ``stop_at`` ends early (as an interruption would)."""
        tc = self.tc
        total = int(steps if steps is not None else tc["steps"])
        if total <= 0:
            raise TrainingError(f"steps must be positive, got {total}")
        torch.set_num_threads(int(tc["num_threads"]))
        seed_everything(int(tc["seed"]))
        model = build_model(self.arch, **self.cfg["model"]).to(self.device)
        max_disp = float(getattr(model, "max_disparity", 0)) or None
        opt = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
        budget = float(tc["time_budget_s"]) if tc["time_budget_s"] else None
        sched = _make_scheduler(opt, tc, total) if budget is None else None
        elapsed_before = 0.0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        last = self.out_dir / "last.pt"
        start = 0
        history: list[dict[str, Any]] = []
        if resume and last.is_file():
            ckpt = load_checkpoint(last)
            ts = ckpt.get("train_state") or {}
            if ckpt["arch"] != self.arch or ckpt["config"] != self.cfg["model"]:
                raise TrainingError(f"{last} was trained with a different model; use another --out")
            if ts.get("total_steps") != total:
                raise TrainingError(
                    f"{last} belongs to a {ts.get('total_steps')}-step run; resume with the same --steps"
                )
            model.load_state_dict(ckpt["state_dict"])
            opt.load_state_dict(ckpt["optimizer"])
            if sched is not None:
                sched.load_state_dict(ckpt["scheduler"])
            elapsed_before = float(ts.get("elapsed_s", 0.0))
            start = int(ckpt["meta"]["steps"])
            history = list(ts.get("history", []))
            print(f"resuming {last} at step {start}/{total}", flush=True)
        elif resume:
            print(f"nothing to resume in {self.out_dir}: starting from scratch", flush=True)
        if start == 0 and self.init_from:
            init = load_checkpoint(self.init_from)
            if init["arch"] != self.arch or init["config"] != self.cfg["model"]:
                raise TrainingError(
                    f"--init {self.init_from} is a different model ({init['arch']} {init['config']})"
                )
            model.load_state_dict(init["state_dict"])
            print(f"initialised from {init['path']} ({init['meta'].get('steps')} steps)", flush=True)

        batch = int(tc["batch_size"])
        if self.reader:
            dataset = ReaderStereoDataset(
                self.reader["kind"], self.reader["root"], self.augment, int(tc["seed"]), length=total * batch
            )
        else:
            dataset = SyntheticStereoDataset(
                self.train_synth, self.augment, int(tc["seed"]), length=total * batch
            )
        if self.train_real:
            real = RealPairsDataset(self.train_real, self.augment, int(tc["seed"]), length=total * batch)
            dataset = MixedDataset(dataset, real, self.train_real.fraction, int(tc["seed"]))
        if getattr(model, "takes_search_range", False):
            dataset = WithHints(dataset, model.hint_params, self.hint_training, int(tc["seed"]))
        loader = DataLoader(
            dataset,
            batch_size=batch,
            sampler=range(start * batch, total * batch),
            num_workers=int(tc["num_workers"]),
            persistent_workers=int(tc["num_workers"]) > 0,
            pin_memory=self.device.type == "cuda",
        )
        train_csv = self.out_dir / "train_log.csv"
        val_csv = self.out_dir / "val_log.csv"
        metrics: dict[str, Any] = history[-1]["metrics"] if history else {}

        def checkpoint(step: int, with_optimizer: bool) -> dict[str, Any]:
            meta = {
                "steps": step,
                "total_steps": total,
                "metrics": metrics,
                "command": self.command,
                "training_data": self.training_data_description(),
                "train_config": self.cfg,
                "device": str(self.device),
                "elapsed_s": round(elapsed(), 1),
                "initialised_from": self.init_from,
            }
            extra: dict[str, Any] = {}
            if with_optimizer:
                extra = {
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else {},
                    "train_state": {"total_steps": total, "history": history, "elapsed_s": elapsed()},
                }
            return make_checkpoint(model, self.arch, self.cfg["model"], meta, **extra)

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=start, desc=f"train {self.arch}", dynamic_ncols=True, mininterval=5
            )
        model.train()
        step = start
        t_last = t_start = time.perf_counter()

        def elapsed() -> float:
            return elapsed_before + time.perf_counter() - t_start

        def lr_now() -> float:
            return opt.param_groups[0]["lr"]

        def set_budget_lr() -> float:
            progress = max(step / total, elapsed() / budget)
            for group in opt.param_groups:
                group["lr"] = tc["lr"] * budget_lr_factor(progress, tc["warmup"])
            return progress

        if budget is not None:
            set_budget_lr()
        with open(train_csv, "a", newline="") as fcsv:
            writer = csv.writer(fcsv)
            if start == 0:
                writer.writerow(["step", "loss", "parts", "lr", "sec_per_step", "time"])
            for sample in loader:
                left = sample["left"].to(self.device, non_blocking=True)
                right = sample["right"].to(self.device, non_blocking=True)
                gt = sample["disparity"].to(self.device, non_blocking=True)
                extra = {"hint": sample["hint"].to(self.device)} if "hint" in sample else {}
                out = model(left, right, **extra)
                loss, parts = compute_loss(self.arch, out, gt, step, total, tc, max_disp or 1e9)
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {float(loss)} at step {step}; lower the learning rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
                opt.step()
                step += 1
                if sched is not None:
                    sched.step()
                    finished = step == total
                else:
                    finished = step == total or set_budget_lr() >= 1.0
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                if step % tc["log_every"] == 0 or finished:
                    now = time.perf_counter()
                    n = tc["log_every"] if step % tc["log_every"] == 0 else (step % tc["log_every"])
                    writer.writerow(
                        [
                            step,
                            f"{float(loss.detach()):.5f}",
                            parts,
                            f"{lr_now():.3e}",
                            f"{(now - t_last) / max(n, 1):.3f}",
                            time.strftime("%H:%M:%S"),
                        ]
                    )
                    fcsv.flush()
                    t_last = now
                if step % tc["val_every"] == 0 or finished:
                    metrics = self._validate(model)
                    history.append({"step": step, "metrics": metrics})
                    _append_val(val_csv, step, metrics)
                    save_checkpoint(checkpoint(step, False), self.out_dir / f"step_{step:06d}.pt")
                    if bar is not None:
                        shown = {k: round(v, 3) for k, v in metrics.items() if k.endswith(("epe", "bad3"))}
                        bar.write(f"step {step}: {shown}")
                if step % tc["ckpt_every"] == 0 or finished or step == stop_at:
                    save_checkpoint(checkpoint(step, True), last)
                if finished or step == stop_at:
                    break
        if bar is not None:
            bar.close()
        final = save_checkpoint(checkpoint(step, False), self.out_dir / "final.pt")
        return TrainResult(self.out_dir, step, final, metrics)


def _append_val(path: Path, step: int, metrics: dict[str, float]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        keys = sorted(metrics)
        if new:
            w.writerow(["step", *keys])
        w.writerow(
            [step, *[f"{metrics[k]:.5f}" if isinstance(metrics[k], float) else metrics[k] for k in keys]]
        )
