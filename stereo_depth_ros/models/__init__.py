"""Stereo networks (nn.Modules only) and the name -> builder registry."""

from stereo_depth_ros.models.registry import UnknownModelError, build_model, model_names, model_parameters

__all__ = ["UnknownModelError", "build_model", "model_names", "model_parameters"]
