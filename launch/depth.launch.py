"""Stereo depth for one camera source: ``ros2 launch stereo_depth_ros depth.launch.py source:=airsim``.

Starts the depth node, the nearest-object node (nearest_object:=true), the built-in synthetic
camera when source:=synthetic, the rectification nodes a source asks for (USB), and rviz2 with
the package's config (rviz:=true). The wiring comes from config/sources/<source>.yaml through
stereo_depth_ros.sources, the same code ``stereo-depth run --source <source>`` uses.

Examples::

    ros2 launch stereo_depth_ros depth.launch.py source:=synthetic rviz:=true
    ros2 launch stereo_depth_ros depth.launch.py source:=airsim vehicle:=drone_1 baseline:=0.25
    ros2 launch stereo_depth_ros depth.launch.py source:=realsense namespace:=front device:=cuda
    ros2 launch stereo_depth_ros depth.launch.py source:=bag   # with: ros2 bag play --clock BAG
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

SHUTDOWN_TIMEOUT_S = "30"
SOURCE_CHOICES = ["synthetic", "airsim", "cosys_airsim", "realsense", "zed", "usb", "bag"]

# Template values of the source files; "" keeps the source's default.
SOURCE_ARGUMENTS = {
    "vehicle": "AirSim / Cosys-AirSim vehicle name (settings.json Vehicles key)",
    "left_camera": "AirSim / Cosys-AirSim left camera name",
    "right_camera": "AirSim / Cosys-AirSim right camera name",
    "camera_namespace": "realsense-ros camera_namespace",
    "camera_name": "realsense-ros camera_name, or the ZED wrapper's camera_name",
    "node_name": "ZED wrapper node name",
    "stereo_namespace": "USB pair: namespace holding left/ and right/ (image_raw, camera_info)",
    "frame_id": "USB / bag: the left optical frame id (RViz fixed frame)",
    "left_image": "bag: left image topic",
    "left_info": "bag: left camera_info topic",
    "right_image": "bag: right image topic",
    "right_info": "bag: right camera_info topic",
}

# Depth node parameters settable from the command line; "" keeps config/depth_node.yaml + source.
DEPTH_PARAMETERS = {
    "backend": "stereo backend: default, learned or sgbm",
    "model": "checkpoint path or shipped model name (learned backend)",
    "device": "auto, cuda or cpu",
    "approximate_sync": "pair left/right by approximate time (true for skewed stamps: AirSim, USB)",
    "slop": "approximate sync window in seconds",
    "queue_size": "synchronizer queue size",
    "baseline": "stereo baseline in metres, overriding camera_info (AirSim publishes P[3] = 0)",
}


def _ros_parameters(params: dict) -> dict:
    """Strings stay strings: launch_ros would otherwise YAML-parse them ("1.0" -> float)."""
    return {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
            for name, value in params.items()}


def _flag(context, name: str) -> bool:
    text = LaunchConfiguration(name).perform(context).strip().lower()
    if text not in ("true", "false"):
        raise RuntimeError(f"launch argument {name}:={text!r} must be true or false")
    return text == "true"


def _launch_graph(context, *args, fixed_source: str | None = None, **kwargs):
    from stereo_depth_ros.launch_checks import check_companions
    from stereo_depth_ros.rviz_config import render_rviz_config
    from stereo_depth_ros.sources import load_source, parse_param_value, plan_graph

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    source_name = fixed_source or value("source")
    # a fixed source declares only its own template arguments
    template_names = _source_arguments(fixed_source) if fixed_source else SOURCE_ARGUMENTS
    source = load_source(source_name, {name: value(name) for name in template_names})
    namespace = value("namespace")
    sim_time_text = value("use_sim_time").lower()
    if sim_time_text not in ("", "true", "false"):
        raise RuntimeError(f"launch argument use_sim_time:={sim_time_text!r} must be true, false or empty")
    use_sim_time = None if sim_time_text == "" else sim_time_text == "true"
    depth_params = {name: parse_param_value(value(name)) for name in DEPTH_PARAMETERS if value(name)}
    nearest_params = {name: parse_param_value(value(name)) for name in ("device",) if value(name)}
    for launch_name, param in (("nearest_model", "model"), ("nearest_backend", "backend")):
        if value(launch_name):
            nearest_params[param] = value(launch_name)

    specs = plan_graph(
        source,
        namespace=namespace,
        nearest_object=_flag(context, "nearest_object"),
        use_sim_time=use_sim_time,
        depth_params=depth_params,
        nearest_params=nearest_params,
    )
    rviz = _flag(context, "rviz")
    # every other package's executable is found before anything starts (no orphaned nodes)
    check_companions([(extra.package, extra.executable, f"source:={source.name}")
                      for extra in source.extra_nodes]
                     + ([("rviz2", "rviz2", "rviz:=true")] if rviz else []))
    sim_time = specs[0].parameters["use_sim_time"]
    actions = [LogInfo(msg=f"stereo_depth_ros: source {source.name} ({source.description}); "
                           f"driver: {source.driver}")]
    for spec in specs:
        actions.append(Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace,
            parameters=[_ros_parameters(dict(spec.parameters))],
            remappings=list(spec.remappings),
            output="screen",
            emulate_tty=True,
            # on Ctrl-C a node finishes the frame in hand and joins its threads (seconds on a
            # loaded CPU): launch's default 5 s before SIGTERM cut that short
            sigterm_timeout=SHUTDOWN_TIMEOUT_S,
        ))
    for extra in source.extra_nodes:
        actions.append(Node(
            package=extra.package,
            executable=extra.executable,
            name=extra.name,
            namespace=extra.namespace,
            parameters=[_ros_parameters({**extra.parameters, "use_sim_time": sim_time})],
            remappings=list(extra.remappings),
            arguments=list(extra.arguments),
            output="screen",
        ))
    if rviz:
        custom = value("rviz_config")
        text = render_rviz_config(source, namespace, template=Path(custom) if custom else None)
        with tempfile.NamedTemporaryFile("w", prefix="stereo_depth_", suffix=".rviz", delete=False) as handle:
            handle.write(text)
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            namespace=namespace,
            arguments=["-d", handle.name],
            parameters=[{"use_sim_time": sim_time}],
            output="screen",
        ))
    return actions


def _source_arguments(source: str) -> dict[str, str]:
    from stereo_depth_ros.sources import load_source

    return {name: text for name, text in SOURCE_ARGUMENTS.items() if name in load_source(source).arguments}


def build_launch_description(source: str | None = None) -> LaunchDescription:
    """The graph's launch description; with ``source`` fixed (a shortcut launch file) there is no
    ``source`` argument and only that source's own template arguments are offered."""
    arguments = [] if source else [
        DeclareLaunchArgument("source", default_value="synthetic", choices=SOURCE_CHOICES,
                              description="camera source: config/sources/<source>.yaml")]
    arguments += [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the graph"),
        DeclareLaunchArgument("nearest_object", default_value="true", choices=["true", "false"],
                              description="start the nearest-object node"),
        DeclareLaunchArgument("nearest_backend", default_value="",
                              description="nearest-object segmentation: unet (default) or threshold "
                                          "(no weights needed)"),
        DeclareLaunchArgument("nearest_model", default_value="",
                              description="nearest-object U-Net checkpoint (default: shipped)"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="start rviz2 with rviz/stereo_depth.rviz"),
        DeclareLaunchArgument("rviz_config", default_value="",
                              description="another rviz2 config (topics in the root namespace)"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true/false; empty = the source's default (bag: true)"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text)
                  for name, text in DEPTH_PARAMETERS.items()]
    template = _source_arguments(source) if source else SOURCE_ARGUMENTS
    arguments += [DeclareLaunchArgument(name, default_value="", description=text + " (empty: source default)")
                  for name, text in template.items()]
    graph = OpaqueFunction(function=partial(_launch_graph, fixed_source=source))
    return LaunchDescription([*arguments, graph])


def generate_launch_description() -> LaunchDescription:
    return build_launch_description()
