"""Evaluation results -> JSON, a Markdown report, console tables and PNG figures.

One :class:`ModelRun` per evaluated model (per-frame rows, items that failed, the summary);
several runs are shown side by side. Figures are drawn with OpenCV/numpy only: colorized
disparity and error maps (``stereo_depth_ros.visualize``) and an error histogram.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stereo_depth_ros.evaluation.metrics import aggregate
from stereo_depth_ros.visualize import colorize, error_map, save_rgb


@dataclass
class Column:
    key: str
    header: str
    scale: float = 1.0
    fmt: str = "{:.3f}"

    def format(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        if isinstance(value, (int, float)):
            return self.fmt.format(value * self.scale)
        return str(value)


STEREO_COLUMNS = [
    Column("epe", "EPE px"), Column("d1_all", "D1-all %", 100, "{:.2f}"),
    Column("bad1", "bad-1 %", 100, "{:.2f}"), Column("bad2", "bad-2 %", 100, "{:.2f}"),
    Column("bad3", "bad-3 %", 100, "{:.2f}"), Column("density", "density %", 100, "{:.1f}"),
    Column("time_ms", "ms/frame", 1, "{:.1f}"), Column("frames", "frames", 1, "{:d}"),
]
DEPTH_COLUMNS = [
    Column("abs_rel", "AbsRel"), Column("rmse", "RMSE m"), Column("delta1", "δ<1.25 %", 100, "{:.2f}"),
]

# keys of a frame row that are not metrics; metrics pooled over pixels by their valid_pixels
_NON_METRIC = {"item", "time_ms", "stamp_ns"}
_POOLED = {"epe", "d1_all", "bad1", "bad2", "bad3", "density", "valid_pixels", "abs_rel", "rmse", "delta1"}


@dataclass
class ModelRun:
    """One model over one dataset or bag."""

    model: str
    backend: str = ""
    device: str = ""
    frames: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def add_error(self, item: str, message: str) -> None:
        self.errors.append({"item": item, "error": message})

    def finish(self, by_pixels: bool = True) -> dict[str, Any]:
        """Aggregate the frames (metrics pixel-weighted, or per frame with ``by_pixels=False``;
        median time) into ``summary``."""
        self.summary = summarize(self.frames, by_pixels)
        self.summary["failed"] = len(self.errors)
        return self.summary


def summarize(frames: Sequence[dict[str, Any]], by_pixels: bool = True) -> dict[str, Any]:
    """Aggregate frame rows: each metric group (plain keys; ``noc_*``, ``depth_*``, ... with
    their own ``<prefix>valid_pixels``) pixel-weighted by its own count (or, ``by_pixels=False``,
    every frame with ground truth weighing the same); keys without a pixel count averaged over
    the frames where they are finite; median and p90 of ``time_ms``."""
    if not frames:
        return {"frames": 0}
    keys = [k for k in dict.fromkeys(k for f in frames for k in f) if k not in _NON_METRIC]
    prefixes = sorted({k[: -len("valid_pixels")] for k in keys if k.endswith("valid_pixels")},
                      key=len, reverse=True)
    out: dict[str, Any] = {}
    grouped: set[str] = set()
    for prefix in prefixes:
        group = [k for k in keys if k.startswith(prefix) and k not in grouped
                 and k[len(prefix):] in _POOLED]
        grouped.update(group)
        rows = [{k[len(prefix):]: f[k] for k in group if k in f} for f in frames
                if (prefix + "valid_pixels") in f]
        out.update({prefix + k: v for k, v in aggregate(rows, by_pixels).items() if k != "frames"})
    for key in keys:
        if key in grouped:
            continue
        vals = np.array([f[key] for f in frames if isinstance(f.get(key), (int, float))], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else math.nan
    times = [f["time_ms"] for f in frames if isinstance(f.get("time_ms"), (int, float))]
    if times:
        out["time_ms"] = float(np.median(times))
        out["time_p90_ms"] = float(np.percentile(times, 90))
    out["frames"] = len(frames)
    return out


# --------------------------------------------------------------------------- text

def table_rows(runs: Sequence[ModelRun], columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
    header = ["model"] + [c.header for c in columns]
    rows = [[run.model] + [c.format(run.summary.get(c.key)) for c in columns] for run in runs]
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars/arrays -> Python, dataclasses -> dicts (JSON has no NaN)."""
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    return path


def environment() -> dict[str, str]:
    """Date and machine, for the record of a run."""
    info = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "machine": platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # torch is optional for a report
        pass
    return info


Section = tuple[str, Sequence[Column]]


def write_report(out_dir: str | Path, title: str, runs: Sequence[ModelRun], meta: dict[str, Any],
                 columns: Sequence[Column] = STEREO_COLUMNS, figures: Sequence[Path] = (),
                 sections: Sequence[Section] = ()) -> dict[str, Path]:
    """Write ``results.json`` and ``report.md`` into ``out_dir``; returns their paths.

    ``sections``: (heading, columns) tables shown one after another instead of ``columns``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**environment(), **meta}
    payload = {"title": title, "meta": meta, "models": [asdict(r) for r in runs]}
    json_path = write_json(out / "results.json", payload)

    md = [f"# {title}", ""]
    md += [f"- **{k}**: {v}" for k, v in meta.items()]
    md.append("")
    for heading, cols in sections or [("", columns)]:
        if heading:
            md += [f"## {heading}", ""]
        md += [markdown_table(*table_rows(runs, cols)), ""]
    for run in runs:
        extra = [f"backend `{run.backend}`" if run.backend else "",
                 f"device `{run.device}`" if run.device else ""]
        md.append(f"**{run.model}**: " + ", ".join(x for x in extra if x) + ".")
        md += [f"- note: {n}" for n in run.notes]
        if run.errors:
            md.append(f"- {len(run.errors)} item(s) could not be evaluated:")
            md += [f"  - `{e['item']}`: {e['error']}" for e in run.errors]
        md.append("")
    if figures:
        md += ["## Figures", ""]
        md += [f"![{Path(f).stem}]({Path(f).relative_to(out).as_posix() if Path(f).is_absolute() else f})"
               for f in figures]
        md.append("")
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    return {"json": json_path, "markdown": md_path}


# --------------------------------------------------------------------------- figures

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """Caption bar above ``img`` (RGB)."""
    bar = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def frame_panel(left_rgb: np.ndarray, gt: np.ndarray | None, preds: dict[str, np.ndarray],
                max_disp: float | None = None, max_error: float = 5.0) -> np.ndarray:
    """One frame at a glance: left image | GT disparity, then per model its disparity | error map.
    All disparities share one colour scale (``max_disp``, else the GT/prediction range)."""
    if max_disp is None:
        ref = gt if gt is not None else next(iter(preds.values()), None)
        finite = ref[np.isfinite(ref)] if ref is not None else np.array([])
        max_disp = float(finite.max()) if finite.size else 1.0
    rows = [np.hstack([_label(left_rgb, "left"),
                       _label(colorize(gt, 0, max_disp), "ground truth") if gt is not None
                       else _label(np.zeros_like(left_rgb), "no ground truth")])]
    for name, pred in preds.items():
        pred_img = _label(colorize(pred, 0, max_disp), f"{name}: disparity")
        err_img = (_label(error_map(pred, gt, max_error), f"{name}: |error| 0-{max_error:g} px")
                   if gt is not None else _label(np.zeros_like(left_rgb), "no ground truth"))
        rows.append(np.hstack([pred_img, err_img]))
    return np.vstack(rows)


def _axes(img: np.ndarray, box: tuple[int, int, int, int], xmax: float, ymax: float, xlabel: str,
          yfmt: str = "{:.0f}%", yscale: float = 100.0) -> None:
    """Frame, 6 ticks on each axis (x from 0 to ``xmax``, y from 0 to ``ymax`` shown x ``yscale``)
    and the x label, drawn into ``img`` around ``box`` = (left, top, width, height)."""
    left, top, pw, ph = box
    black, font = (0, 0, 0), cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)
    for i in range(6):
        frac = i / 5
        x = int(left + frac * pw)
        cv2.line(img, (x, top + ph), (x, top + ph + 4), black, 1)
        label = f"{frac * xmax:g}"
        (tw, _), _ = cv2.getTextSize(label, font, 0.4, 1)
        tx = min(x - tw // 2, img.shape[1] - tw - 2)  # centred under the tick, inside the image
        cv2.putText(img, label, (tx, top + ph + 18), font, 0.4, black, 1)
        y = int(top + ph - frac * ph)
        cv2.line(img, (left - 4, y), (left, y), black, 1)
        cv2.putText(img, yfmt.format(yscale * frac * ymax), (4, y + 4), font, 0.4, black, 1)
    cv2.putText(img, xlabel, (left + 4, img.shape[0] - 6), font, 0.45, black, 1)


def _legend(img: np.ndarray, box: tuple[int, int, int, int], names: Sequence[str]) -> None:
    left, top, pw, _ = box
    for k, name in enumerate(names):
        lx, ly = left + pw - 170, top + 8 + 18 * k
        cv2.rectangle(img, (lx, ly), (lx + 12, ly + 12), _PALETTE[k % len(_PALETTE)], -1)
        cv2.putText(img, name[:22], (lx + 18, ly + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)


def error_histogram(errors: dict[str, np.ndarray], max_error: float = 10.0, bins: int = 40,
                    size: tuple[int, int] = (720, 360)) -> np.ndarray:
    """Histogram of absolute disparity errors per model (share of valid pixels per bin, errors
    above ``max_error`` in the last bin), drawn as outlined step curves with axes and legend."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    box = (60, 30, w - 80, h - 78)
    left, top, pw, ph = box
    edges = np.linspace(0.0, max_error, bins + 1)
    hists = {}
    for name, err in errors.items():
        err = np.asarray(err, dtype=np.float64).ravel()
        err = err[~np.isnan(err)]  # +inf (no prediction) stays: it lands in the last bin
        counts = (np.histogram(np.minimum(err, max_error - 1e-9), bins=edges)[0] if err.size
                  else np.zeros(bins))
        hists[name] = counts / max(err.size, 1)
    ymax = max([float(v.max()) for v in hists.values()] + [1e-6]) * 1.1
    _axes(img, box, max_error, ymax, "|disparity error| (px); last bin: larger or missing")
    for k, hist in enumerate(hists.values()):
        pts = []
        for i, v in enumerate(hist):
            y = int(top + ph - v / ymax * ph)
            pts += [(int(left + i / bins * pw), y), (int(left + (i + 1) / bins * pw), y)]
        cv2.polylines(img, [np.array(pts, np.int32)], False, _PALETTE[k % len(_PALETTE)], 2, cv2.LINE_AA)
    _legend(img, box, list(hists))
    return img


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k at or above ``value`` (> 0): an axis
    end whose fifths are round numbers."""
    scale = 10.0 ** np.floor(np.log10(value))
    for step in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if step * scale >= value * (1 - 1e-9):
            return float(step * scale)
    return float(10.0 * scale)


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
               title: str = "", yfmt: str = "{:.0f}%", yscale: float = 100.0,
               size: tuple[int, int] = (720, 360)) -> np.ndarray:
    """Curves (name -> (xs, ys)) on shared axes from 0, with markers, a legend and a title."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    box = (60, 30, w - 80, h - 78)
    left, top, pw, ph = box
    finite = [(np.asarray(x, float), np.asarray(y, float)) for x, y in series.values()]
    xmax = _nice_ceiling(max([float(np.nanmax(x)) for x, _ in finite if x.size] + [1.0]))
    # headroom above the highest curve for the legend, which sits in the top right corner
    ymax = max([float(np.nanmax(y)) for _, y in finite if np.isfinite(y).any()] + [1e-6]) * 1.1
    ymax *= 1.0 + 0.06 * len(finite)
    _axes(img, box, xmax, ymax, xlabel, yfmt, yscale)
    if title:
        cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (xs, ys) in enumerate(finite):
        color = _PALETTE[k % len(_PALETTE)]
        ok = np.isfinite(ys)
        pts = np.stack([left + xs[ok] / xmax * pw, top + ph - ys[ok] / ymax * ph], 1).astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(img, (int(x), int(y)), 3, color, -1, cv2.LINE_AA)
    _legend(img, box, list(series))
    return img


def save_figure(out_dir: str | Path, name: str, rgb: np.ndarray) -> Path:
    """Save an RGB figure as ``out_dir/figures/<name>.png`` (name made filesystem-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = Path(out_dir) / "figures" / f"{safe}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_rgb(path, rgb)
    return path
