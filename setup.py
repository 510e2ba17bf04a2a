"""ament_python package: builds with colcon in a ROS 2 workspace and with pip in a plain venv."""
from glob import glob

from setuptools import find_packages, setup

package_name = "stereo_depth_ros"


def share(*patterns: str) -> list[str]:
    return sorted(f for pattern in patterns for f in glob(pattern, recursive=True))


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={package_name: ["weights/*.pt", "weights/*.json", "weights/*.md", "resources/*",
                                 "training/configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", share("launch/*.py")),
        ("share/" + package_name + "/config", share("config/*.yaml")),
        ("share/" + package_name + "/config/sources", share("config/sources/*.yaml")),
        ("share/" + package_name + "/config/airsim", share("config/airsim/*")),
        ("share/" + package_name + "/rviz", share("rviz/*.rviz")),
        # the Fast DDS loopback / large-image profile, for FASTDDS_DEFAULT_PROFILES_FILE
        ("share/" + package_name + "/dds", ["stereo_depth_ros/resources/fastdds_loopback.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="stereo_depth_ros developers",
    maintainer_email="stereo-depth-ros@example.org",
    description="Learned stereo depth for ROS 2: disparity, depth, point cloud and nearest obstacle.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "stereo-depth = stereo_depth_ros.cli:main",
            "depth_node = stereo_depth_ros.ros.entry:depth_node",
            "synthetic_camera = stereo_depth_ros.ros.entry:synthetic_camera",
            "nearest_object_node = stereo_depth_ros.ros.entry:nearest_object_node",
            "evaluator_node = stereo_depth_ros.ros.entry:evaluator_node",
            "bag_replay = stereo_depth_ros.ros.entry:bag_replay",
        ],
    },
)
