"""Where the package's shared files (config/, launch/, rviz/) and weights live.

Installed with colcon they are in the ament share directory; installed with pip they are in
``<prefix>/share/stereo_depth_ros``; in a source checkout they are at the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "stereo_depth_ros"
PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def share_dir() -> Path:
    """The directory holding config/, launch/ and rviz/ for this installation."""
    source_root = PACKAGE_DIR.parent
    if (source_root / "package.xml").is_file() and (source_root / "config").is_dir():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not a ROS install, or the package is not in the index
        pass
    prefix_share = Path(sys.prefix) / "share" / PACKAGE
    if prefix_share.is_dir():
        return prefix_share
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} share directory (config/, launch/): looked in {source_root}, "
        f"the ament index and {prefix_share}"
    )


def config_path(*parts: str) -> Path:
    return share_dir().joinpath("config", *parts)
