"""Middlebury 2014 / MiddEval3 scene folders (a shortcut to the reader in data.readers)."""

from __future__ import annotations

from pathlib import Path

from .readers import MiddleburyDataset, StereoRecord


def read_scene(folder: str | Path) -> StereoRecord:
    """One scene folder (im0.png, im1.png, disp0GT.pfm, ...) as a StereoRecord."""
    dataset = MiddleburyDataset(folder)
    if len(dataset) != 1:
        raise ValueError(f"{folder}: expected one scene folder, found {len(dataset)} scenes")
    return dataset[0]


def read_scenes(root: str | Path) -> MiddleburyDataset:
    """Every scene folder under ``root``."""
    return MiddleburyDataset(root)
