"""``stereo-depth replay BAG``: publish a rosbag2 with its timing and /clock (see
stereo_depth_ros.ros.bag_replay; ``ros2 bag play --clock 100 BAG`` on a real ROS 2 install)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--clock-hz", type=float, default=100.0, help="/clock rate between messages")
    parser.add_argument("--loop", action="store_true", help="play again from the start when done")
    parser.add_argument("--topics", nargs="+", default=None, help="only these topics")
    parser.add_argument("--wait-for-subscribers", nargs="*", default=[], metavar="TOPIC",
                        help="start once these topics have a subscriber (at most --wait-timeout s)")
    parser.add_argument("--wait-timeout", type=float, default=10.0)
    parser.add_argument("--prefix", default="", help="namespace put before every topic (not /clock)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before playing")
    parser.add_argument("--dds", choices=("auto", "loopback", "system"), default="auto")


def run(args: argparse.Namespace) -> int:
    from stereo_depth_ros.ros.bag_replay import run as replay

    return replay(args)
