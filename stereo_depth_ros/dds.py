"""Confining DDS to this machine's loopback with the Fast DDS profile the package ships.

Must run before rclpy.init(): Fast DDS reads FASTDDS_DEFAULT_PROFILES_FILE when the first
participant is created. Users of a real ROS 2 install keep their own DDS settings unless they
ask for the profile (``--dds loopback``); a pip-only runtime gets it by default.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def loopback_profile_path() -> Path:
    """Path of the shipped Fast DDS profile (UDPv4 on 127.0.0.1 + SHM, no builtin transports)."""
    return Path(str(resources.files("stereo_depth_ros") / "resources" / "fastdds_loopback.xml"))


def is_ros_install() -> bool:
    """True inside a sourced ROS 2 install (colcon/apt), where users own their DDS settings."""
    return bool(os.environ.get("AMENT_PREFIX_PATH"))


def configure_dds(mode: str = "auto", env: dict[str, str] | None = None) -> str | None:
    """Apply the DDS policy to ``env`` (default: this process) and return the profile in force.

    mode: ``loopback`` always sets the shipped profile; ``system`` leaves everything alone;
    ``auto`` sets it only when no profile is set already and this is not a ROS install.
    """
    if mode not in ("auto", "loopback", "system"):
        raise ValueError(f"unknown DDS mode {mode!r}: use auto, loopback or system")
    target = os.environ if env is None else env
    if mode == "loopback" or (mode == "auto" and PROFILE_ENV not in target and not is_ros_install()):
        target[PROFILE_ENV] = str(loopback_profile_path())
    return target.get(PROFILE_ENV)
