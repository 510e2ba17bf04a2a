"""Before a launch file starts anything: are the other packages' executables it needs installed?

``ros2 launch`` resolves each Node's package only when that node starts, so a missing companion
(rviz2 for ``rviz:=true``, image_proc for ``source:=usb``) used to fail after the package's own
nodes had started, leaving them orphaned. The launch file calls :func:`check_companions` first
and raises one error naming what to install. No rclpy here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path


class MissingCompanion(RuntimeError):
    """A package the requested graph needs is not installed; the message says which and how."""


def executable_installed(package: str, executable: str) -> bool:
    """True when ``ros2 run package executable`` would find it (lib/<package>/<executable> under
    the package's prefix in the ament index)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:  # no ament index at all: nothing of ROS is installed
        return False
    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        return False
    path = Path(prefix) / "lib" / package / executable
    return path.is_file() and os.access(path, os.X_OK)


def _apt_name(package: str) -> str:
    distro = os.environ.get("ROS_DISTRO") or "$ROS_DISTRO"
    return f"ros-{distro}-{package.replace('_', '-')}"


def check_companions(needed: Iterable[tuple[str, str, str]],
                     installed: Callable[[str, str], bool] | None = None) -> None:
    """``needed``: (package, executable, what asks for it). Raises MissingCompanion naming every
    missing package in one message; returns quietly when all are there."""
    installed = installed or executable_installed
    missing: dict[str, list[str]] = {}
    for package, executable, reason in needed:
        if not installed(package, executable):
            missing.setdefault(package, []).append(f"{reason} ({executable})")
    if missing:
        parts = [f"'{pkg}' for {', '.join(dict.fromkeys(reasons))}" for pkg, reasons in missing.items()]
        install = " ".join(_apt_name(pkg) for pkg in missing)
        raise MissingCompanion(
            f"stereo_depth_ros: nothing started: this graph needs {'; '.join(parts)}, not installed. "
            f"Install it (sudo apt install {install}, or rosdep install --from-paths src --ignore-src) "
            "or leave out the option that asks for it")
