"""``stereo-depth run --source SOURCE``: the launch graph in one process over rclpy.

Reads config/sources/<source>.yaml through stereo_depth_ros.sources, exactly as
launch/depth.launch.py does, and starts the package's nodes (synthetic camera when the source
has one, depth node, nearest-object node) in one executor. For where ``ros2 launch`` is not
installed (a pip-only runtime) and for testing the launch wiring for real. Ctrl-C or
``--duration`` stops it cleanly. Other packages' nodes a source needs (USB: image_proc) are
listed, not started.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stereo_depth_ros.sources import (
    SOURCES,
    NodeSpec,
    SourceConfigError,
    load_source,
    parse_param_assignment,
    plan_graph,
)

# Source template arguments with their own flags (--vehicle, --left-camera, ...); --arg sets any.
SOURCE_FLAGS = ("vehicle", "left_camera", "right_camera", "camera_namespace", "camera_name",
                "stereo_namespace", "frame_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="synthetic",
                        help=f"camera source: {', '.join(SOURCES)} or a source YAML path")
    parser.add_argument("--namespace", default="", help="namespace of the graph (default: none)")
    parser.add_argument("--backend", help="stereo backend: default, learned, sgbm")
    parser.add_argument("--model", help="checkpoint path or shipped model name (learned backend)")
    parser.add_argument("--device", help="auto, cuda or cpu")
    parser.add_argument("--nearest-object", action=argparse.BooleanOptionalAction, default=True,
                        help="start the nearest-object node (default: yes)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="depth node parameter (repeatable), e.g. --param baseline:=0.25")
    parser.add_argument("--nearest-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="nearest-object node parameter (repeatable)")
    parser.add_argument("--camera-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="synthetic camera parameter (repeatable), e.g. --camera-param rate:=5.0")
    for name in SOURCE_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"source argument {name}")
    parser.add_argument("--arg", action="append", default=[], metavar="NAME:=VALUE",
                        help="any other source template argument (see config/sources/<source>.yaml)")
    parser.add_argument("--use-sim-time", choices=["true", "false"], help="default: the source's")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved graph (nodes, remaps, parameters) and exit")
    parser.add_argument("--dds", choices=["auto", "loopback", "system"], default="auto",
                        help="DDS transport policy (default auto: loopback unless a ROS install)")


def _assignments(items: list[str]) -> dict[str, Any]:
    return dict(parse_param_assignment(item) for item in items)


def build_plan(args: argparse.Namespace) -> tuple[Any, list[NodeSpec]]:
    """The source and node specs for these arguments (raises SourceConfigError on bad input)."""
    source_args = {name: getattr(args, name, None) for name in SOURCE_FLAGS}
    for name, value in _assignments(args.arg).items():
        source_args[name] = str(value)
    source = load_source(args.source, source_args)
    depth_params = _assignments(args.param)
    for name in ("backend", "model", "device"):
        if getattr(args, name, None):
            depth_params[name] = getattr(args, name)
    nearest_params = _assignments(args.nearest_param)
    if args.device and "device" not in nearest_params:
        nearest_params["device"] = args.device
    specs = plan_graph(
        source,
        namespace=args.namespace,
        nearest_object=args.nearest_object,
        use_sim_time=None if args.use_sim_time is None else args.use_sim_time == "true",
        depth_params=depth_params,
        nearest_params=nearest_params,
        synthetic_params=_assignments(args.camera_param),
    )
    return source, specs


def describe_plan(source: Any, specs: list[NodeSpec]) -> str:
    """Human-readable graph: what `--dry-run` prints."""
    lines = [f"source {source.name} ({source.path}): {source.description}",
             f"  driver: {source.driver}", f"  frame: {source.frame_id}"]
    for spec in specs:
        where = f"/{spec.namespace}/{spec.name}" if spec.namespace else f"/{spec.name}"
        lines.append(f"node {where} ({spec.package} {spec.executable})")
        lines += [f"  remap {a} -> {b}" for a, b in spec.remappings]
        lines += [f"  param {k} = {v!r}" for k, v in spec.parameters.items()]
    for extra in source.extra_nodes:
        lines.append(f"external node {extra.package} {extra.executable} in {extra.namespace} "
                     "(not started by run)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        source, specs = build_plan(args)
    except SourceConfigError as exc:
        print(f"stereo-depth run: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe_plan(source, specs))
        return 0
    if args.duration < 0:
        print("stereo-depth run: --duration must be >= 0", file=sys.stderr)
        return 2

    from stereo_depth_ros.dds import configure_dds

    configure_dds(args.dds)  # before rclpy creates its first participant
    from stereo_depth_ros.ros.runner import run_graph

    try:
        run_graph(source, specs, args.duration)
    except Exception as exc:  # a node failing to start: say which and why (the graph is closed)
        print(f"stereo-depth run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
