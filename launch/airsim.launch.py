"""AirSim shortcut: ``ros2 launch stereo_depth_ros airsim.launch.py [vehicle:=drone_1] [rviz:=true]``.

The same graph as ``depth.launch.py source:=airsim`` (all of its arguments apply). Start the
AirSim ROS 2 wrapper first: ``ros2 launch airsim_ros_pkgs airsim_node.launch.py``.
"""

from __future__ import annotations

import os

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    depth_launch = os.path.join(os.path.dirname(os.path.abspath(__file__)), "depth.launch.py")
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(depth_launch),
            launch_arguments={"source": "airsim"}.items(),
        ),
    ])
