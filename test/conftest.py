"""Test-wide set-up: DDS confined to loopback and a per-run ROS domain, before rclpy starts."""

import os

from stereo_depth_ros.dds import configure_dds

configure_dds("loopback")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
os.environ.setdefault("OMP_NUM_THREADS", "2")
