"""What a ground-truth image in a bag holds, decided from its topic name and encoding (or given
with ``--gt-kind``), with the reason in words for the report.

Kinds:
- ``disparity``: pixels (the synthetic camera's ``ground_truth/disparity``, a DisparityImage);
- ``depth``: planar depth Z in metres (REP 118; AirSim's ``DepthPlanar``; 16UC1 in millimetres);
- ``perspective``: distance from the camera centre along each pixel's ray, metres (AirSim's
  ``DepthPerspective``), turned into planar depth with the left camera's intrinsics.

The name is read without regard to case, last path element first, so AirSim's
``.../front_left/DepthPlanar`` and Cosys-AirSim's ``.../front_left_DepthPlanar/image`` are both
depth. AirSim's ``DisparityNormalized`` is refused: it is scaled to [0, 1], not pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stereo_depth_ros.geometry import StereoGeometry, depth_to_disparity

KINDS = ("disparity", "depth", "perspective")
UNITS = {"disparity": "disparity in pixels", "depth": "planar depth (Z) in metres",
         "perspective": "distance along each pixel's ray in metres (converted to planar depth)"}
_MILLIMETRES = ("16UC1", "mono16")


class GroundTruthError(ValueError):
    """A ground-truth topic that cannot be scored against (the message says why)."""


@dataclass(frozen=True)
class Interpretation:
    kind: str
    why: str

    def describe(self, topic: str, encoding: str) -> str:
        unit = UNITS[self.kind]
        if self.kind != "disparity" and encoding in _MILLIMETRES:
            unit = unit.replace("in metres", "in millimetres")
        return f"{topic} ({encoding}) read as {unit}: {self.why}"


def interpret(topic: str, encoding: str, disparity_message: bool = False,
              requested: str = "auto") -> Interpretation:
    """What the ground truth on ``topic`` holds. ``requested`` (``--gt-kind``) wins over
    everything but a DisparityImage, which can only hold disparity."""
    if disparity_message:
        return Interpretation("disparity", "it is a stereo_msgs/DisparityImage")
    if requested != "auto":
        if requested not in KINDS:
            raise GroundTruthError(f"unknown ground-truth kind {requested!r}: use one of {', '.join(KINDS)}")
        return Interpretation(requested, f"--gt-kind {requested} says so")
    for part in reversed([p for p in topic.split("/") if p]):
        low = part.lower()
        if "disparitynormalized" in low:
            raise GroundTruthError(f"{topic}: AirSim's DisparityNormalized is scaled to [0, 1], not "
                                   "pixels, so nothing can be scored against it; record DepthPlanar instead "
                                   "(or say what it is with --gt-kind)")
        if "depthperspective" in low:
            return Interpretation("perspective", f"the topic name says {part} (AirSim's distance from the "
                                  "camera centre; --gt-kind overrides)")
        if "depthplanar" in low:
            return Interpretation("depth", f"the topic name says {part} (AirSim's planar depth; --gt-kind "
                                  "overrides)")
        if "depth" in low:
            return Interpretation("depth", f"the topic name says {part} (--gt-kind overrides)")
        if "disparity" in low:
            return Interpretation("disparity", f"the topic name says {part} (--gt-kind overrides)")
    if encoding in _MILLIMETRES:
        return Interpretation("depth", f"its encoding {encoding} is depth in millimetres (REP 118); the "
                              "name says neither depth nor disparity (--gt-kind overrides)")
    return Interpretation("disparity", f"neither its name nor its encoding {encoding} says depth: taken as "
                          "disparity (use --gt-kind depth or perspective if it is not)")


def planar_depth(distance: np.ndarray, geometry: StereoGeometry) -> np.ndarray:
    """Distance along each pixel's ray -> planar depth Z (left camera intrinsics)."""
    h, w = distance.shape
    u = (np.arange(w, dtype=np.float64) - geometry.cx) / geometry.fx
    v = (np.arange(h, dtype=np.float64) - geometry.cy) / geometry.fy
    norm = np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)
    return (distance / norm).astype(np.float32)


def to_disparity(values: np.ndarray, kind: str, geometry: StereoGeometry
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(GT disparity in px, GT planar depth in m or None) from ground truth of ``kind``."""
    if kind == "disparity":
        return values, None
    depth = planar_depth(values, geometry) if kind == "perspective" else values
    return depth_to_disparity(depth, geometry), depth
