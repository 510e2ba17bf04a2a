"""The import seam: ROS's own cv_bridge and sensor_msgs_py when importable, the package's tested
equivalents (same call shapes) otherwise; and the package's own synchronizers always.

message_filters is the exception on purpose: ROS's Python ApproximateTimeSynchronizer is a
greedy matcher, not the documented ApproximateTime policy, and both of its synchronizers stall
for good once a bag loop leaves unpaired messages in a full queue (docs/sync.md measures it).
A looping bag is how people test, so the package's implementation (the C++ policy, with an
input rule for loops and /clock resets) serves a ROS install as well. STEREO_DEPTH_ROS_SYNC=1
takes ROS's instead.

Node code imports from here only::

    from stereo_depth_ros.ros.compat import message_filters, CvBridge, point_cloud2

``SOURCES`` says which implementation is in use ("ros" or "builtin") for logs and diagnostics.
Set STEREO_DEPTH_BUILTIN_COMPAT=1 to force the built-in ones (tests of the fallback path).
"""

from __future__ import annotations

import os
from types import ModuleType

_FORCE_BUILTIN = os.environ.get("STEREO_DEPTH_BUILTIN_COMPAT", "") not in ("", "0")
_ROS_SYNC = os.environ.get("STEREO_DEPTH_ROS_SYNC", "") not in ("", "0")


def _load_message_filters() -> tuple[ModuleType, str]:
    if _ROS_SYNC and not _FORCE_BUILTIN:
        try:
            import message_filters as mf

            mf.ApproximateTimeSynchronizer  # noqa: B018 (must expose the API we use)
            return mf, "ros"
        except (ImportError, AttributeError):
            pass
    from stereo_depth_ros.ros import _message_filters

    return _message_filters, "builtin"


def _load_cv_bridge() -> tuple[type, type, str]:
    if not _FORCE_BUILTIN:
        try:
            from cv_bridge import CvBridge as RosCvBridge
            from cv_bridge import CvBridgeError as RosCvBridgeError

            return RosCvBridge, RosCvBridgeError, "ros"
        except ImportError:
            pass
    from stereo_depth_ros.ros._cv_bridge import CvBridge as OwnCvBridge
    from stereo_depth_ros.ros._cv_bridge import CvBridgeError as OwnCvBridgeError

    return OwnCvBridge, OwnCvBridgeError, "builtin"


def _load_point_cloud2() -> tuple[ModuleType, str]:
    if not _FORCE_BUILTIN:
        try:
            from sensor_msgs_py import point_cloud2 as pc2

            return pc2, "ros"
        except ImportError:
            pass
    from stereo_depth_ros.ros import _point_cloud2

    return _point_cloud2, "builtin"


message_filters, _mf_source = _load_message_filters()
CvBridge, CvBridgeError, _bridge_source = _load_cv_bridge()
point_cloud2, _pc2_source = _load_point_cloud2()

SOURCES: dict[str, str] = {
    "message_filters": _mf_source,
    "cv_bridge": _bridge_source,
    "sensor_msgs_py": _pc2_source,
}

__all__ = ["SOURCES", "CvBridge", "CvBridgeError", "message_filters", "point_cloud2"]
