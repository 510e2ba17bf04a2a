"""AirSim shortcut: ``ros2 launch stereo_depth_ros airsim.launch.py [vehicle:=drone_1] [rviz:=true]``.

The same graph as ``depth.launch.py source:=airsim``, with all of its arguments except
``source`` and the other sources' template arguments. Start the AirSim ROS 2 wrapper first:
``ros2 launch airsim_ros_pkgs airsim_node.launch.py``.
"""

from __future__ import annotations

import importlib.util
import os

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    # launch files are not importable modules: load the main one from beside this file
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "depth.launch.py")
    spec = importlib.util.spec_from_file_location("stereo_depth_ros_depth_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_launch_description(source="airsim")
