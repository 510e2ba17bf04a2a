"""Run one or more models over a dataset and score them against its ground truth.

A dataset is a list of ``(name, loader)``; a loader returns an :class:`EvalItem` or raises
with a message naming the bad file. A failing item is recorded for every model and the rest
of the set is still evaluated. Frames are scored three ways over valid ground truth (raw,
``dense_*`` with holes filled, ``ref_*`` on the pixels the reference model covers; see
``metrics.three_views``), and ``noc_*`` where the dataset gives a non-occluded mask. Each item
is searched over its own disparity range when it has one (Middlebury's ``ndisp``), unless a
fixed range is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stereo_depth_ros.backends import BackendError, StereoBackend
from stereo_depth_ros.evaluation import report
from stereo_depth_ros.evaluation.metrics import stereo_metrics, three_views
from stereo_depth_ros.evaluation.models import compute_shift, new_runs

# Synthetic seeds >= HELD_OUT_SEED_START are never trained on: training (stereo_depth_ros/
# training, configs seed_start 0) draws its scenes below it. Training *validation* (checkpoint
# selection) uses 1_000_000 + a few; the evaluation set defaults to EVAL_SEED_START so that
# the reported numbers are not those the checkpoint was selected on either.
HELD_OUT_SEED_START = 1_000_000
EVAL_SEED_START = 2_000_000
HIST_SAMPLES_PER_FRAME = 20_000


@dataclass
class EvalItem:
    name: str
    left: np.ndarray  # (H, W, 3) uint8 RGB
    right: np.ndarray
    disparity: np.ndarray | None  # (H, W) float32 GT shift in px, NaN/<=0 where unknown
    mask: np.ndarray | None = None  # (H, W) bool, True = non-occluded (scored in noc_*)
    max_disparity: float | None = None  # the scene's disparity bound (search range), when known


Source = Sequence[tuple[str, Callable[[], EvalItem]]]


def synthetic_source(count: int, seed: int = EVAL_SEED_START, width: int = 640, height: int = 480,
                     max_disp: float = 128.0) -> Source:
    """``count`` held-out synthetic scenes, seeds ``seed .. seed+count-1`` (exact disparity;
    the occlusion mask gives the noc metrics)."""
    from stereo_depth_ros.commands.record import make_rig
    from stereo_depth_ros.data.synthetic import render_random

    rig = make_rig(width, height)

    def loader(s: int) -> Callable[[], EvalItem]:
        def load() -> EvalItem:
            sample = render_random(s, rig, max_disparity=max_disp)
            return EvalItem(f"seed{s}", sample.left, sample.right, sample.disparity, ~sample.occlusion)
        return load

    return [(f"seed{s}", loader(s)) for s in range(seed, seed + count)]


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def dataset_source(kind: str, root: str | Path) -> Source:
    """The items of a dataset on disk through ``stereo_depth_ros.data.readers.open_dataset``."""
    from stereo_depth_ros.data.readers import open_dataset

    # "folder": a capture folder (left/, right/, depth/ + calibration.json), the AirSim reader's layout
    dataset = open_dataset("airsim" if kind == "folder" else kind, root)
    n = len(dataset)

    def item_name(i: int) -> str:
        names = getattr(dataset, "names", None)
        if callable(names):
            names = names()
        if names is not None:
            return str(names[i])
        return f"{kind}[{i}]"

    def loader(i: int, name: str) -> Callable[[], EvalItem]:
        def load() -> EvalItem:
            s = dataset[i]
            ndisp = (_field(s, "calib") or {}).get("ndisp")
            return EvalItem(str(_field(s, "name") or name), _field(s, "left"), _field(s, "right"),
                            _field(s, "disparity"), _nonocc_mask(s),
                            float(ndisp) if isinstance(ndisp, int | float) and ndisp > 0 else None)
        return load

    out = []
    for i in range(n):
        name = item_name(i)
        out.append((name, loader(i, name)))
    return out


def _nonocc_mask(sample: Any) -> np.ndarray | None:
    mask = _field(sample, "nonocc", "noc_mask", "mask")
    if mask is not None:
        return np.asarray(mask, dtype=bool)
    occ = _field(sample, "occlusion")
    return None if occ is None else ~np.asarray(occ, dtype=bool)


def _check_item(item: EvalItem) -> None:
    for side, img in (("left", item.left), ("right", item.right)):
        if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"{side} image is not an (H, W, 3) uint8 RGB image")
    if item.left.shape != item.right.shape:
        raise ValueError(f"left {item.left.shape[:2]} and right {item.right.shape[:2]} images differ in size")
    if item.disparity is None:
        raise ValueError("no ground-truth disparity")
    if item.disparity.shape != item.left.shape[:2]:
        raise ValueError(f"ground truth {item.disparity.shape} and image {item.left.shape[:2]} "
                         "differ in size")


def score(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None,
          reference: np.ndarray | None = None) -> dict[str, float]:
    """Frame metrics over all valid GT in three views (raw, ``dense_*``, ``ref_*`` when a
    reference prediction is given), and raw over non-occluded GT as ``noc_*`` when a mask exists."""
    row = three_views(pred, gt, reference)
    if mask is not None:
        row |= {f"noc_{k}": v for k, v in stereo_metrics(pred, gt, mask).items()}
    return row


def evaluate(source: Source, models: Sequence[tuple[str, StereoBackend]], out_dir: str | Path | None = None,
             max_disp: float | None = None, figures: int = 4, progress: bool = True,
             limit: int | None = None, reference: int | None = 0, scene_range: bool = True,
             by_pixels: bool = True) -> tuple[list[report.ModelRun], list[Path]]:
    """Every model on every item: (runs with per-frame rows, failures and summaries; the
    figures written under ``out_dir``).

    ``reference``: index of the model whose covered pixels give the ``ref_*`` view (None: no
    such view). ``scene_range``: search each item over its own ``max_disparity`` when it has
    one (backends with ``for_range``); otherwise the backends' configured range.
    ``by_pixels``: summaries pixel-weighted (else the mean over items)."""
    runs = new_runs(models)
    errors: dict[str, list[np.ndarray]] = {run.model: [] for run in runs}
    rng = np.random.default_rng(0)
    items = list(source)[:limit] if limit else list(source)
    iterator: Any = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="eval", unit="pair")
    figure_paths: list[Path] = []
    for index, (name, load) in enumerate(iterator):
        try:
            item = load()
            _check_item(item)
        except Exception as exc:  # any reader failure: name the item, keep going
            message = f"{name}: {exc}"
            for run in runs:
                run.add_error(name, message)
            continue
        gt = np.asarray(item.disparity, dtype=np.float32)
        preds: dict[str, np.ndarray] = {}
        ref_pred: np.ndarray | None = None
        order = list(range(len(models)))
        if reference is not None:  # the reference first: its pixels are needed by the others
            order.insert(0, order.pop(reference))
        for i in order:
            run, backend = runs[i], models[i][1]
            if scene_range and item.max_disparity and hasattr(backend, "for_range"):
                backend = backend.for_range(item.max_disparity)
            try:
                t0 = time.perf_counter()
                pred = compute_shift(backend, item.left, item.right)
                elapsed = (time.perf_counter() - t0) * 1000.0
                if pred.shape != gt.shape:
                    raise BackendError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
            except BackendError as exc:
                run.add_error(item.name, f"{item.name}: {exc}")
                continue
            if i == reference:
                ref_pred = pred
            row = score(pred, gt, item.mask, ref_pred)  # no ref_* view where the reference failed
            run.frames.append({"item": item.name, **row, "time_ms": elapsed})
            preds[run.model] = pred
            has = np.isfinite(gt) & (gt > 0)
            err = np.abs(np.where(np.isfinite(pred), pred, np.inf) - gt)[has]
            if err.size > HIST_SAMPLES_PER_FRAME:
                err = rng.choice(err, HIST_SAMPLES_PER_FRAME, replace=False)
            errors[run.model].append(err)
        if out_dir is not None and index < figures and preds:
            panel = report.frame_panel(item.left, gt, preds, max_disp=max_disp)
            figure_paths.append(report.save_figure(out_dir, f"frame_{index:03d}_{item.name}", panel))
    for run in runs:
        run.finish(by_pixels)
    if out_dir is not None and any(errors.values()):
        hist = report.error_histogram({k: np.concatenate(v) if v else np.zeros(0) for k, v in errors.items()})
        figure_paths.insert(0, report.save_figure(out_dir, "error_histogram", hist))
    return runs, figure_paths


def columns_for(runs: Sequence[report.ModelRun]) -> list[report.Column]:
    """The stereo columns, plus the non-occluded ones when some run has them."""
    columns = list(report.STEREO_COLUMNS)
    if any("noc_epe" in r.summary for r in runs):
        columns[1:1] = [report.Column("noc_epe", "EPE noc"),
                        report.Column("noc_d1_all", "D1 noc %", 100, "{:.2f}")]
    return columns


def _prefixed(prefix: str, keys: Sequence[str]) -> list[report.Column]:
    by_key = {c.key: c for c in report.STEREO_COLUMNS}
    return [report.Column(prefix + k, by_key[k].header, by_key[k].scale, by_key[k].fmt) for k in keys]


def sections_for(runs: Sequence[report.ModelRun], reference: str | None) -> list[report.Section]:
    """The three views as (heading, columns) tables: raw, dense (holes filled) and on the
    reference's pixels (when there is a reference)."""
    sections: list[report.Section] = [
        ("Dense: holes filled by background interpolation (KITTI devkit / Middlebury SDK), "
         "all valid ground truth", _prefixed("dense_", ("epe", "d1_all", "bad1", "bad2", "bad3"))),
        ("Raw: holes count as errors in the rates, EPE over covered pixels", columns_for(runs)),
    ]
    if reference is not None and any("ref_epe" in r.summary for r in runs):
        sections.append((f"On the pixels {reference} covers",
                         _prefixed("ref_", ("epe", "d1_all", "bad1", "bad2", "bad3", "density"))))
    return sections
