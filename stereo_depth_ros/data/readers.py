"""Readers for stereo datasets, all yielding one record type (:class:`StereoRecord`).

    ds = open_dataset("middlebury", "/data/MiddEval3/trainingQ")
    len(ds), ds.names            # items are found when the dataset is opened
    rec = ds[0]                  # loads one item; a bad item raises DataFormatError naming the file
    for rec in ds: ...           # skips bad items and records them in ds.errors

Kinds and the layouts they expect are documented in docs/data.md. Disparity is the left
view's match shift x_left - x_right in pixels (what the files store), float32 with NaN
where there is no ground truth. ``nonocc`` is True where the ground truth is valid and not
occluded (when the dataset says so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .formats import (
    DataFormatError,
    read_depth,
    read_image,
    read_kitti_disparity,
    read_mask,
    read_pfm,
)

IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")


@dataclass
class StereoRecord:
    """One stereo pair with whatever ground truth its dataset provides."""

    name: str
    left: np.ndarray                      # (H, W, 3) uint8 RGB
    right: np.ndarray                     # (H, W, 3) uint8 RGB
    disparity: np.ndarray | None          # (H, W) float32 px, NaN = unknown; None = no GT
    nonocc: np.ndarray | None = None      # (H, W) bool, True = valid and not occluded
    calib: dict[str, Any] | None = None   # fx, baseline (m), cx, cx_right, ... when known
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. synthetic depth/instances


@dataclass
class ItemError:
    """An item that could not be read: its name and the message (which names the file)."""

    name: str
    message: str


@dataclass
class _Item:
    name: str
    paths: dict[str, Path | None]
    info: dict[str, Any] = field(default_factory=dict)


class StereoDataset:
    """Items found under ``root``; loading happens per item, on access."""

    kind = "base"

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.errors: list[ItemError] = []
        if self.root is not None and not self.root.exists():
            raise DataFormatError(f"{self.root}: dataset root not found")
        self._items = self._discover()
        if not self._items:
            raise DataFormatError(f"{self.root}: no {self.kind} items found ({self.layout_hint()})")

    # Subclasses implement these two.
    def _discover(self) -> list[_Item]:
        raise NotImplementedError

    def _load(self, item: _Item) -> StereoRecord:
        raise NotImplementedError

    def layout_hint(self) -> str:
        return "see docs/data.md for the expected layout"

    @property
    def names(self) -> list[str]:
        return [item.name for item in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> StereoRecord:
        item = self._items[index]
        record = self._load(item)
        _check_sizes(record, item)
        return record

    def __iter__(self) -> Iterator[StereoRecord]:
        """Every readable item; unreadable ones are skipped and appended to ``errors``."""
        for rec in self.iter_with_errors():
            if isinstance(rec, StereoRecord):
                yield rec

    def iter_with_errors(self) -> Iterator[StereoRecord | ItemError]:
        """Every item in order: a record, or an ItemError (also appended to ``errors``)."""
        for i, item in enumerate(self._items):
            try:
                yield self[i]
            except (DataFormatError, OSError, ValueError) as exc:
                err = ItemError(item.name, str(exc))
                self.errors.append(err)
                yield err


def _check_sizes(rec: StereoRecord, item: _Item) -> None:
    def where(key: str) -> str:
        p = item.paths.get(key)
        return str(p) if p is not None else f"{item.name} {key}"

    if rec.left.shape != rec.right.shape:
        raise DataFormatError(f"{where('right')}: right image {rec.right.shape[:2]} differs in size "
                              f"from the left image {rec.left.shape[:2]} ({where('left')})")
    hw = rec.left.shape[:2]
    if rec.disparity is not None and rec.disparity.shape != hw:
        raise DataFormatError(f"{where('disparity')}: ground truth {rec.disparity.shape} differs "
                              f"in size from the left image {hw}")
    if rec.nonocc is not None and rec.nonocc.shape != hw:
        raise DataFormatError(f"{where('nonocc')}: mask {rec.nonocc.shape} differs in size from "
                              f"the left image {hw}")


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _with_suffixes(path_without_suffix: Path, suffixes: tuple[str, ...]) -> Path | None:
    for s in suffixes:
        p = path_without_suffix.with_name(path_without_suffix.name + s)
        if p.is_file():
            return p
    return None


# --------------------------------------------------------------------------- SceneFlow

class SceneFlowDataset(StereoDataset):
    """FlyingThings3D / Monkaa / Driving: frames_<pass>/.../left|right/*.png with
    disparity/.../left/*.pfm (same relative path). ``split`` keeps paths containing it
    (e.g. "TRAIN", "TEST")."""

    kind = "sceneflow"

    def __init__(self, root: str | Path, pass_name: str = "finalpass", split: str | None = None
                 ) -> None:
        self.pass_name = pass_name
        self.split = split
        super().__init__(root)

    def layout_hint(self) -> str:
        return (f"expected frames_{self.pass_name}/**/left/*.png, frames_{self.pass_name}/**/right/"
                "*.png and disparity/**/left/*.pfm")

    def _discover(self) -> list[_Item]:
        frames_dir = f"frames_{self.pass_name}"
        items = []
        for left_dir in sorted(self.root.rglob("left")):
            parts = left_dir.parts
            if frames_dir not in parts or not left_dir.is_dir():
                continue
            rel = left_dir.relative_to(self.root)
            if self.split and self.split not in rel.parts:
                continue
            idx = parts.index(frames_dir)
            disp_dir = Path(*parts[:idx], "disparity", *parts[idx + 1:])
            right_dir = left_dir.parent / "right"
            prefix = [part for part in rel.parent.parts if part != frames_dir]
            for left in _images_in(left_dir):
                items.append(_Item(
                    "/".join([*prefix, left.stem]),
                    {"left": left, "right": right_dir / left.name,
                     "disparity": disp_dir / (left.stem + ".pfm")}))
        return items

    def _load(self, item: _Item) -> StereoRecord:
        p = item.paths
        disp = read_pfm(p["disparity"])
        if disp.ndim == 3:
            disp = disp[..., 0]
        disp = np.where(np.isfinite(disp), np.abs(disp), np.nan).astype(np.float32)
        return StereoRecord(item.name, read_image(p["left"]), read_image(p["right"]), disp)


# --------------------------------------------------------------------------- KITTI

def _parse_kitti_calib(path: Path) -> dict[str, Any] | None:
    """fx, cx, cx_right, baseline (m) from a KITTI calibration file, or None if absent."""
    if not path.is_file():
        return None
    mats: dict[str, np.ndarray] = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" not in line:
            continue
        key, _, values = line.partition(":")
        try:
            mats[key.strip()] = np.array([float(v) for v in values.split()])
        except ValueError:
            continue
    for left_key, right_key in (("P_rect_02", "P_rect_03"), ("P2", "P3"), ("P_rect_00", "P_rect_01"),
                                ("P0", "P1")):
        if left_key in mats and right_key in mats and mats[left_key].size == 12:
            pl, pr = mats[left_key], mats[right_key]
            fx = float(pl[0])
            return {"fx": fx, "fy": float(pl[5]), "cx": float(pl[2]), "cy": float(pl[6]),
                    "cx_right": float(pr[2]), "baseline": float((pl[3] - pr[3]) / fx),
                    "file": str(path)}
    return None


class KittiDataset(StereoDataset):
    """KITTI 2012 (colored_0/1 or image_0/1, disp_occ/disp_noc, calib/) and
    KITTI 2015 (image_2/3, disp_occ_0/disp_noc_0, calib_cam_to_cam/). ``root`` is the folder
    holding those (e.g. .../training) or its parent. Only frames *_10 have ground truth."""

    kind = "kitti"

    def __init__(self, root: str | Path, version: int | None = None, split: str = "training"
                 ) -> None:
        self.version = version
        self.split = split
        super().__init__(root)

    def layout_hint(self) -> str:
        return ("expected image_2/ + image_3/ (+ disp_occ_0/, disp_noc_0/) for 2015 or "
                "colored_0/ + colored_1/ or image_0/ + image_1/ (+ disp_occ/, disp_noc/) for 2012")

    def _base(self) -> Path:
        for cand in (self.root, self.root / self.split):
            if any((cand / d).is_dir() for d in ("image_2", "colored_0", "image_0")):
                return cand
        return self.root

    def _discover(self) -> list[_Item]:
        base = self._base()
        version = self.version
        if version is None:
            version = 2015 if (base / "image_2").is_dir() else 2012
        if version == 2015:
            left_dir, right_dir = base / "image_2", base / "image_3"
            occ_dir, noc_dir = base / "disp_occ_0", base / "disp_noc_0"
            calib_dir, calib_name = base / "calib_cam_to_cam", "{id}.txt"
        elif version == 2012:
            left_dir, right_dir = base / "colored_0", base / "colored_1"
            if not left_dir.is_dir():
                left_dir, right_dir = base / "image_0", base / "image_1"
            occ_dir, noc_dir = base / "disp_occ", base / "disp_noc"
            calib_dir, calib_name = base / "calib", "{id}.txt"
        else:
            raise DataFormatError(f"KITTI version must be 2012 or 2015, got {version}")
        self.version = version
        has_gt = occ_dir.is_dir()
        items = []
        for left in _images_in(left_dir):
            if has_gt and not left.stem.endswith("_10"):
                continue  # only the _10 frames have ground truth
            frame_id = left.stem.split("_")[0]
            items.append(_Item(left.stem, {
                "left": left, "right": right_dir / left.name,
                "disparity": occ_dir / f"{left.stem}.png" if has_gt else None,
                "nonocc": noc_dir / f"{left.stem}.png" if noc_dir.is_dir() else None,
                "calib": calib_dir / calib_name.format(id=frame_id)}))
        return items

    def _load(self, item: _Item) -> StereoRecord:
        p = item.paths
        disp = read_kitti_disparity(p["disparity"]) if p["disparity"] is not None else None
        nonocc = None
        if p["nonocc"] is not None:
            nonocc = np.isfinite(read_kitti_disparity(p["nonocc"]))
        calib = _parse_kitti_calib(p["calib"]) if p["calib"] is not None else None
        return StereoRecord(item.name, read_image(p["left"]), read_image(p["right"]), disp,
                            nonocc, calib)


# --------------------------------------------------------------------------- Middlebury / ETH3D

def parse_middlebury_calib(path: str | Path) -> dict[str, Any]:
    """calib.txt of Middlebury 2014 / MiddEval3 / ETH3D: cam0/cam1 matrices and scalars.

    Adds fx, fy, cx, cy, cx_right and baseline_m (the file's baseline is in millimetres).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    out: dict[str, Any] = {"file": str(path)}
    for line in path.read_text(errors="replace").splitlines():
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if value.startswith("["):
            rows = [r.split() for r in value.strip("[]").split(";")]
            try:
                out[key] = np.array([[float(v) for v in r] for r in rows], np.float64)
            except ValueError as exc:
                raise DataFormatError(f"{path}: malformed matrix {key}={value}") from exc
        else:
            try:
                out[key] = float(value) if re.search(r"[.eE]", value) else int(value)
            except ValueError:
                out[key] = value
    cam0 = out.get("cam0")
    if isinstance(cam0, np.ndarray) and cam0.shape == (3, 3):
        out.update(fx=float(cam0[0, 0]), fy=float(cam0[1, 1]), cx=float(cam0[0, 2]),
                   cy=float(cam0[1, 2]))
        cam1 = out.get("cam1")
        if isinstance(cam1, np.ndarray) and cam1.shape == (3, 3):
            out["cx_right"] = float(cam1[0, 2])
    if isinstance(out.get("baseline"), (int, float)):
        out["baseline_m"] = float(out["baseline"]) / 1000.0
    return out


def _pfm_disparity(path: Path) -> np.ndarray:
    disp = read_pfm(path)
    if disp.ndim == 3:
        disp = disp[..., 0]
    return np.where(np.isfinite(disp) & (disp > 0), disp, np.nan).astype(np.float32)


class MiddleburyDataset(StereoDataset):
    """Middlebury 2014 / MiddEval3 scene folders: im0.png, im1.png, disp0GT.pfm (or
    disp0.pfm), optional mask0nocc.png (255 = non-occluded) and calib.txt. ``root`` is one
    scene folder or any folder above them."""

    kind = "middlebury"

    def layout_hint(self) -> str:
        return "expected scene folders with im0.png, im1.png and disp0GT.pfm or disp0.pfm"

    def _gt_folder(self, scene: Path) -> Path:
        return scene

    def _discover(self) -> list[_Item]:
        items = []
        for im0 in sorted(self.root.rglob("im0.png")):
            scene = im0.parent
            gt = self._gt_folder(scene)
            disp = next((gt / n for n in ("disp0GT.pfm", "disp0.pfm") if (gt / n).is_file()), None)
            mask = gt / "mask0nocc.png"
            calib = scene / "calib.txt"
            name = str(scene.relative_to(self.root)) if scene != self.root else scene.name
            items.append(_Item(name, {
                "left": im0, "right": scene / "im1.png", "disparity": disp,
                "nonocc": mask if mask.is_file() else None,
                "calib": calib if calib.is_file() else None}))
        return items

    def _load(self, item: _Item) -> StereoRecord:
        p = item.paths
        left, right = read_image(p["left"]), read_image(p["right"])
        disp = _pfm_disparity(p["disparity"]) if p["disparity"] is not None else None
        nonocc = read_mask(p["nonocc"], 255) if p["nonocc"] is not None else None
        if nonocc is not None and disp is not None and nonocc.shape == disp.shape:
            nonocc &= np.isfinite(disp)
        calib = parse_middlebury_calib(p["calib"]) if p["calib"] is not None else None
        return StereoRecord(item.name, left, right, disp, nonocc, calib)


class Eth3dDataset(MiddleburyDataset):
    """ETH3D two-view: scene folders with im0.png, im1.png, calib.txt; ground truth
    (disp0GT.pfm, mask0nocc.png) in the scene folder or in ``gt_root``/<scene>/ (the
    separate two_view_training_gt download; found automatically next to ``root``)."""

    kind = "eth3d"

    def __init__(self, root: str | Path, gt_root: str | Path | None = None) -> None:
        self.gt_root = Path(gt_root) if gt_root is not None else None
        if self.gt_root is None:
            root_p = Path(root)
            for cand in (root_p.parent / "two_view_training_gt", Path(str(root_p) + "_gt")):
                if cand.is_dir():
                    self.gt_root = cand
                    break
        super().__init__(root)

    def _gt_folder(self, scene: Path) -> Path:
        if self.gt_root is not None:
            cand = self.gt_root / scene.relative_to(self.root) if scene != self.root else None
            if cand is not None and cand.is_dir():
                return cand
            if (self.gt_root / scene.name).is_dir():
                return self.gt_root / scene.name
        return scene


# --------------------------------------------------------------------------- AirSim folder

_CALIB_NAMES = ("calibration.json", "calib.json", "meta.json", "calibration.yaml",
                "calibration.yml", "calib.yaml", "calib.yml", "meta.yaml")


def read_folder_calibration(root: Path) -> dict[str, Any] | None:
    """The capture's calibration (needs fx and baseline in metres), or None if no file."""
    for name in _CALIB_NAMES:
        path = root / name
        if not path.is_file():
            continue
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text())
            else:
                import yaml

                data = yaml.safe_load(path.read_text())
        except Exception as exc:  # json/yaml errors differ; all mean the same here
            raise DataFormatError(f"{path}: unreadable calibration ({exc})") from exc
        if not isinstance(data, dict):
            raise DataFormatError(f"{path}: calibration must be a mapping with fx and baseline")
        for key in ("fx", "baseline"):
            value = data.get(key)
            if not isinstance(value, (int, float)) or not value > 0:
                raise DataFormatError(f"{path}: calibration needs a positive '{key}', got {value!r}")
        out = dict(data)
        out["file"] = str(path)
        return out
    return None


class AirSimFolderDataset(StereoDataset):
    """A capture folder: left/*.png, right/*.png, optional depth/<stem>.npy|.pfm (DepthPlanar,
    metres) and calibration.json (or calib/meta .json/.yaml) with fx and baseline (m).
    Disparity = fx * baseline / Z. Without depth/ the pairs come without ground truth
    (for self-supervised fine-tuning)."""

    kind = "airsim"

    def layout_hint(self) -> str:
        return "expected left/*.png and right/*.png (+ depth/*.npy|*.pfm and calibration.json)"

    def _discover(self) -> list[_Item]:
        self.calib = read_folder_calibration(self.root)
        depth_dir = self.root / "depth"
        if depth_dir.is_dir() and self.calib is None:
            raise DataFormatError(
                f"{self.root}: depth/ present but no calibration file ({', '.join(_CALIB_NAMES)}) "
                "with fx and baseline to turn depth into disparity")
        items = []
        for left in _images_in(self.root / "left"):
            right = _with_suffixes(self.root / "right" / left.stem, IMAGE_SUFFIXES)
            depth = None
            if depth_dir.is_dir():
                depth = _with_suffixes(depth_dir / left.stem, (".npy", ".pfm")) or (
                    depth_dir / f"{left.stem}.npy")
            items.append(_Item(left.stem, {"left": left,
                                           "right": right or self.root / "right" / left.name,
                                           "disparity": depth}))
        return items

    def _load(self, item: _Item) -> StereoRecord:
        p = item.paths
        left, right = read_image(p["left"]), read_image(p["right"])
        disp = None
        if p["disparity"] is not None:
            depth = read_depth(p["disparity"])
            fb = float(self.calib["fx"]) * float(self.calib["baseline"])
            with np.errstate(divide="ignore", invalid="ignore"):
                disp = np.where(np.isfinite(depth) & (depth > 0), fb / depth, np.nan)
            disp = disp.astype(np.float32)
        return StereoRecord(item.name, left, right, disp, None, self.calib)


# --------------------------------------------------------------------------- synthetic

class SyntheticDataset(StereoDataset):
    """``count`` generator samples, seeds ``seed`` .. ``seed + count - 1`` (root unused)."""

    kind = "synthetic"

    def __init__(self, root: str | Path | None = None, count: int = 100, seed: int = 0,
                 rig: Any = None, width: int = 640, height: int = 480,
                 max_disparity: float = 128.0, photometric: bool = True) -> None:
        from .synthetic import StereoRig

        if count <= 0:
            raise DataFormatError(f"synthetic dataset needs count > 0, got {count}")
        self.count, self.seed = int(count), int(seed)
        self.rig = rig or StereoRig.for_size(width, height)
        self.max_disparity = float(max_disparity)
        self.photometric = photometric
        super().__init__(None)

    def _discover(self) -> list[_Item]:
        return [_Item(f"seed{self.seed + i}", {}, {"seed": self.seed + i})
                for i in range(self.count)]

    def _load(self, item: _Item) -> StereoRecord:
        from .synthetic import render_random

        s = render_random(item.info["seed"], self.rig, self.max_disparity, self.photometric)
        g = self.rig
        calib = {"fx": g.fx, "fy": g.fy, "cx": g.cx, "cy": g.cy, "cx_right": g.cx,
                 "baseline": g.baseline}
        return StereoRecord(item.name, s.left, s.right, s.disparity, ~s.occlusion, calib,
                            {"depth": s.depth, "instances": s.instances,
                             "occlusion": s.occlusion})


# --------------------------------------------------------------------------- factory

DATASETS: dict[str, Any] = {
    "sceneflow": SceneFlowDataset,
    "kitti": KittiDataset,
    "kitti2012": lambda root, **kw: KittiDataset(root, version=2012, **kw),
    "kitti2015": lambda root, **kw: KittiDataset(root, version=2015, **kw),
    "middlebury": MiddleburyDataset,
    "eth3d": Eth3dDataset,
    "airsim": AirSimFolderDataset,
    "synthetic": SyntheticDataset,
}


def open_dataset(kind: str, root: str | Path | None = None, **kwargs: Any) -> StereoDataset:
    """A dataset reader by kind (see DATASETS); raises DataFormatError for a bad root/layout."""
    key = kind.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(DATASETS)}")
    if key != "synthetic" and root is None:
        raise DataFormatError(f"dataset kind {kind!r} needs a root folder")
    return DATASETS[key](root, **kwargs)
