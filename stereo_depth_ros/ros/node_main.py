"""The ``main()`` every node executable shares: DDS policy, rclpy init, spin, clean shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_node(factory: Callable[[], Node], name: str, args: list[str] | None = None,
              startup_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Build the node with ``factory`` and spin it until Ctrl-C or shutdown. An exception in
    ``startup_errors`` (e.g. weights that cannot load) is printed as "<name>: cannot start: ..."
    and gives exit status 1."""
    from stereo_depth_ros.dds import configure_dds

    configure_dds("auto")
    rclpy.init(args=args)
    node = None
    # the executor exists before the node can log that it is up: a Ctrl-C that lands while
    # rclpy.spin() would still be building one leaves a half-made executor whose __del__ fails
    executor = SingleThreadedExecutor()
    try:
        node = factory()
        executor.add_node(node)
        executor.spin()
    except startup_errors as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
