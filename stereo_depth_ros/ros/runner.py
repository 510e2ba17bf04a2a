"""Start a planned graph (stereo_depth_ros.sources.plan_graph) in one process over rclpy: what
``stereo-depth run`` does where ``ros2 launch`` is not installed."""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter

from stereo_depth_ros import stopping
from stereo_depth_ros.ros.graph import NodeGraph
from stereo_depth_ros.ros.spinning import say, stop_message
from stereo_depth_ros.sources import NodeSpec

# NodeSpec.key -> (module, class) of the node implementation
NODE_CLASSES = {
    "synthetic_camera": ("stereo_depth_ros.ros.synthetic_camera", "SyntheticCamera"),
    "depth_node": ("stereo_depth_ros.ros.depth_node", "DepthNode"),
    "nearest_object": ("stereo_depth_ros.ros.nearest_object_node", "NearestObjectNode"),
}


def make_node(spec: NodeSpec, context: Any) -> Any:
    """Instantiate the spec's node class with the spec's name, namespace, remaps and parameters."""
    module_name, class_name = NODE_CLASSES[spec.key]
    cls = getattr(importlib.import_module(module_name), class_name)
    overrides = [Parameter(name, value=value) for name, value in spec.parameters.items()]
    return cls(
        node_name=spec.name,
        namespace=spec.namespace or None,
        context=context,
        cli_args=spec.ros_args(),
        parameter_overrides=overrides,
    )


def run_graph(source: Any, specs: list[NodeSpec], duration: float = 0.0) -> None:
    """Start every spec's node and spin until SIGINT/SIGTERM (stereo_depth_ros.stopping),
    shutdown or ``duration`` seconds (0: no limit). A node that fails to start raises after the
    graph is closed, except the nearest-object node: the depth graph is still useful without it,
    so that is reported."""
    graph = NodeGraph(num_threads=4)
    try:
        for spec in specs:
            if stopping.requested():
                break
            try:
                node = make_node(spec, graph.context)
            except Exception as exc:
                if spec.key != "nearest_object":
                    raise
                print(f"stereo-depth run: nearest-object node not started: {type(exc).__name__}: {exc} "
                      "(--nearest-param backend:=threshold needs no weights; --no-nearest-object "
                      "silences this)", file=sys.stderr)
                continue
            graph.add(node)
            remaps = ", ".join(f"{a} -> {b}" for a, b in spec.remappings) or "no remaps"
            node.get_logger().info(f"started ({spec.executable}; {remaps})")
        if stopping.requested():
            say("stereo-depth run", f"{stop_message()} (during start-up)")
            return
        log = graph.nodes[0].get_logger()
        log.info(f"source {source.name}: {source.description}")
        if source.synthetic_camera is None and source.driver:
            log.info(f"expects the camera driver to be running: {source.driver}")
        for extra in source.extra_nodes:
            log.warning(f"not started here (run it yourself): ros2 run {extra.package} {extra.executable} "
                        f"--ros-args -r __ns:={extra.namespace or '/'} "
                        + " ".join(f"-r {a}:={b}" for a, b in extra.remappings))
        deadline = time.monotonic() + duration if duration > 0 else None
        while graph.context.ok() and (deadline is None or time.monotonic() < deadline):
            if stopping.sleep(0.1):
                log.info(stop_message())
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        graph.close()
