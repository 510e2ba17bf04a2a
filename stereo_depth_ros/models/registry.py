"""Name -> builder registry of the stereo networks: ``build_model(name, **config)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn


def _fast(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.fast import FastStereo

    return FastStereo(**config)


def _guided(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.guided import GuidedStereo

    return GuidedStereo(**config)


def _dispnet(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.dispnet import DispNet

    return DispNet(**config)


def _dispnetc(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.dispnet import DispNet

    return DispNet(**{**config, "correlation": True})


def _stereoconvnet(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.stereoconvnet import StereoConvNet

    return StereoConvNet(**config)


def _unet(**config: Any) -> nn.Module:
    from stereo_depth_ros.models.unet import build_unet

    return build_unet(config)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fast": _fast,
    "guided": _guided,
    "dispnet": _dispnet,
    "dispnetc": _dispnetc,
    "stereoconvnet": _stereoconvnet,
    "unet": _unet,
}

_CLASSES = {
    "fast": ("stereo_depth_ros.models.fast", "FastStereo"),
    "guided": ("stereo_depth_ros.models.guided", "GuidedStereo"),
    "dispnet": ("stereo_depth_ros.models.dispnet", "DispNet"),
    "dispnetc": ("stereo_depth_ros.models.dispnet", "DispNet"),
    "stereoconvnet": ("stereo_depth_ros.models.stereoconvnet", "StereoConvNet"),
    "unet": ("stereo_depth_ros.models.unet", "UNetConfig"),  # nearest-object U-Net (its config's fields)
}


class UnknownModelError(KeyError):
    """An architecture name that is not in the registry, or a config key the builder does not take."""

    def __str__(self) -> str:
        return str(self.args[0])


def model_names() -> list[str]:
    return list(_BUILDERS)


def model_parameters(name: str) -> dict[str, Any]:
    """The config keys the architecture accepts with their defaults."""
    import importlib

    if name not in _CLASSES:
        raise UnknownModelError(f"unknown model architecture {name!r}: choose one of {', '.join(_BUILDERS)}")
    module, cls = _CLASSES[name]
    sig = inspect.signature(getattr(importlib.import_module(module), cls).__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self"}


def build_model(name: str, **config: Any) -> nn.Module:
    """Build architecture ``name`` with ``config`` (constructor keyword arguments)."""
    if name not in _BUILDERS:
        raise UnknownModelError(f"unknown model architecture {name!r}: choose one of {', '.join(_BUILDERS)}")
    known = model_parameters(name)
    unknown = sorted(set(config) - set(known))
    if name == "dispnetc":
        unknown = [k for k in unknown if k != "correlation"]
    if unknown:
        raise UnknownModelError(
            f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(known) or 'no options'}"
        )
    return _BUILDERS[name](**config)
