"""Console-script entry points of the node executables (setup.py). Each installs the stop
request before its node's module is imported: rclpy, torch and OpenCV take seconds to import,
and a SIGINT in that time would otherwise be a KeyboardInterrupt traceback from inside an
import. Nothing heavy may be imported at the top of this module."""

from __future__ import annotations

import importlib

from stereo_depth_ros import stopping


def _main(module: str) -> int:
    stopping.install()
    try:
        return int(importlib.import_module(f"stereo_depth_ros.ros.{module}").main() or 0)
    finally:
        stopping.finishing()


def depth_node() -> int:
    return _main("depth_node")


def nearest_object_node() -> int:
    return _main("nearest_object_node")


def synthetic_camera() -> int:
    return _main("synthetic_camera")


def evaluator_node() -> int:
    return _main("evaluator_node")


def bag_replay() -> int:
    return _main("bag_replay")
