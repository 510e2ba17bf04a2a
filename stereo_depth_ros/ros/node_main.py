"""The ``main()`` every node executable shares: DDS policy, rclpy init, spin, clean shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from stereo_depth_ros import stopping
from stereo_depth_ros.ros import spinning


def spin_node(factory: Callable[[], Node], name: str, args: list[str] | None = None,
              startup_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Build the node with ``factory`` and spin it until SIGINT, SIGTERM or shutdown (exit 0,
    one log line, however many signals come). An exception in ``startup_errors`` (e.g. weights
    that cannot load) is printed as "<name>: cannot start: ..." and gives exit status 1."""
    from stereo_depth_ros.dds import configure_dds

    stopping.install()
    configure_dds("auto")
    spinning.init(args)
    node = None
    # the executor exists before the node can log that it is up: a stop that lands while
    # rclpy.spin() would still be building one leaves a half-made executor whose __del__ fails
    executor = SingleThreadedExecutor()
    try:
        if stopping.requested():
            spinning.say(name, f"{stopping.reason()} received during start-up: not started")
            return 0
        node = factory()
        executor.add_node(node)
        spinning.spin_until_stopped(executor, node.get_logger())
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
        stopping.finishing()
    return 0
