"""Backend registry: ``make_backend(name, **options)``; modules import lazily (torch models are heavy)."""

from __future__ import annotations

import importlib
from typing import Any

from stereo_depth_ros.backends.base import BackendError, DisparityResult, StereoBackend

_BACKENDS = {
    "sgbm": ("stereo_depth_ros.backends.sgbm", "SgbmBackend"),
    "learned": ("stereo_depth_ros.backends.learned", "LearnedBackend"),
}

__all__ = [
    "BackendError",
    "DisparityResult",
    "StereoBackend",
    "available_backends",
    "default_backend_name",
    "make_backend",
]


def available_backends() -> list[str]:
    return list(_BACKENDS)


def default_backend_name() -> str:
    """The best backend that actually works here: the learned model when shipped weights exist
    and were accepted as better than SGBM (see stereo_depth_ros/weights/README.md), else sgbm."""
    from stereo_depth_ros.paths import WEIGHTS_DIR

    return "learned" if (WEIGHTS_DIR / "default_stereo.pt").is_file() else "sgbm"


def make_backend(name: str, **options: Any) -> StereoBackend:
    if name == "default":
        name = default_backend_name()
    if name not in _BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(_BACKENDS)}")
    module_name, class_name = _BACKENDS[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)
