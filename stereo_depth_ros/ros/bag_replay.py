"""Publish a rosbag2's messages with their recorded timing (scaled by ``rate``) and /clock
(rosgraph_msgs/Clock), so a running graph with ``use_sim_time`` sees the bag's time.

The stored CDR bytes are published as they are (rclpy publishes serialized messages), so
nothing is decoded or re-encoded on the way. On a real ROS 2 install ``ros2 bag play --clock
100 BAG`` does the same job (with ``-r RATE`` for the rate); this exists because rosbag2 is not
on PyPI. Usage: ``bag_replay BAG [--rate R] [--loop]`` or ``stereo-depth replay BAG``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from stereo_depth_ros import stopping
from stereo_depth_ros.evaluation import bag_io
from stereo_depth_ros.ros import spinning


def message_type(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagReplayer(Node):
    """Replays ``bag_path`` from a background thread; ``done`` is set when it has finished.

    ``wait_for_subscribers``: topics (bag names) that must have a subscriber before playback
    starts (bounded by ``wait_timeout`` seconds), so a graph started alongside misses nothing.
    ``prefix`` puts every topic under a namespace (``/ns`` + ``/left/image_rect``); /clock stays.
    """

    def __init__(self, bag_path: str | Path, rate: float = 1.0, publish_clock: bool = True,
                 clock_hz: float = 100.0, loop: bool = False, topics: Sequence[str] | None = None,
                 wait_for_subscribers: Sequence[str] = (), wait_timeout: float = 10.0,
                 start_delay: float = 0.0, queue_depth: int = 10, prefix: str = "",
                 node_name: str = "bag_replay",
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # first: the context destroys a node whose construction failed half-way
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bag: Any = None
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.bag = bag_io.open_bag(bag_path)  # BagError names the file
        self.rate = float(rate)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.loop = loop
        self.clock_period = 1.0 / clock_hz if publish_clock and clock_hz > 0 else None
        wanted = [self.bag.resolve(t) for t in topics] if topics else list(self.bag.topics)
        self.topics = [t for t in wanted if t != "/clock"]
        qos = QoSProfile(depth=max(queue_depth, 1))
        qos.reliability = ReliabilityPolicy.RELIABLE
        self.publishers_by_topic = {}
        for topic in self.topics:
            try:
                cls = message_type(self.bag.topics[topic].msgtype)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f"{topic}: message type {self.bag.topics[topic].msgtype} is not "
                                          "installed; not replayed")
                continue
            self.publishers_by_topic[topic] = self.create_publisher(cls, self.prefix + topic, qos)
        self.clock_pub = (self.create_publisher(Clock, "/clock", QoSProfile(depth=1)) if self.clock_period
                          else None)
        self.wait_for = [self.bag.resolve(t) for t in wait_for_subscribers]
        self.wait_timeout = wait_timeout
        self.start_delay = start_delay
        self.published = 0
        self.published_by_topic: dict[str, int] = dict.fromkeys(self.publishers_by_topic, 0)
        self.loop_starts: list[float] = []  # time.monotonic() at the start of each pass over the bag
        self.muted: frozenset[str] = frozenset()  # bag topics not published for now (a camera that stopped)
        self.error: str | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._play, name=f"{node_name}_player", daemon=True)

    def start(self) -> BagReplayer:
        self._thread.start()
        return self

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def _wait_until(self, wall_target: float, bag_ns_at: Any) -> None:
        """Sleep until ``wall_target`` (monotonic), publishing /clock on the way."""
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= wall_target:
                return
            step = min(wall_target - now, self.clock_period or wall_target - now)
            self._stop.wait(step)
            if self.clock_period:
                self._publish_clock(bag_ns_at(time.monotonic()))

    def _play(self) -> None:
        try:
            deadline = time.monotonic() + self.wait_timeout
            while self.wait_for and time.monotonic() < deadline and not self._stop.is_set():
                if all(self.publishers_by_topic[t].get_subscription_count() > 0 for t in self.wait_for
                       if t in self.publishers_by_topic):
                    break
                time.sleep(0.05)
            if self.start_delay:
                self._stop.wait(self.start_delay)
            while not self._stop.is_set():
                self._play_once()
                if not self.loop:
                    break
        except Exception as exc:  # a broken bag ends the replay with a message, not a dead thread
            self.get_logger().error(f"replay of {self.bag.path} stopped: {exc}")
            self.error = str(exc)
        finally:
            self.done.set()

    def _play_once(self) -> None:
        start_bag = self.bag.start_ns
        start_wall = time.monotonic()
        self.loop_starts.append(start_wall)
        rate = self.rate  # a change of ``rate`` takes effect at the next pass

        def bag_ns_at(wall: float) -> int:
            return start_bag + int((wall - start_wall) * rate * 1e9)

        self._publish_clock(start_bag)
        for topic, t, raw in self.bag.raw_messages(list(self.publishers_by_topic)):
            if self._stop.is_set():
                return
            self._wait_until(start_wall + (t - start_bag) / 1e9 / rate, bag_ns_at)
            if self._stop.is_set():
                return
            self._publish_clock(t)
            if topic in self.muted:
                continue
            self.publishers_by_topic[topic].publish(raw)
            self.published += 1
            self.published_by_topic[topic] += 1

    def stop(self) -> None:
        """End the playback and wait for the player thread (it may be inside a publish)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join(timeout=5.0)

    def destroy_node(self) -> None:
        self.stop()
        if self.bag is not None:
            self.bag.close()
        super().destroy_node()


def run(args: argparse.Namespace) -> int:
    """Replay until the bag ends (no --loop) or a stop is requested (SIGINT/SIGTERM, when the
    program installed stereo_depth_ros.stopping): exit 0, one line; 1 when the bag broke."""
    from stereo_depth_ros.dds import configure_dds

    configure_dds(args.dds)
    spinning.init()
    node = None
    executor = SingleThreadedExecutor()
    try:
        if stopping.requested():
            spinning.say("bag_replay", f"{stopping.reason()} received during start-up: nothing played")
            return 0
        node = BagReplayer(args.bag, args.rate, not args.no_clock, args.clock_hz, args.loop, args.topics,
                           args.wait_for_subscribers, args.wait_timeout, args.delay, prefix=args.prefix)
        node.get_logger().info(f"playing {args.bag}: {len(node.publishers_by_topic)} topics, "
                               f"{node.bag.duration_ns / 1e9:.2f} s at rate {args.rate}")
        node.start()
        executor.add_node(node)
        how = spinning.spin_until_stopped(executor, node.get_logger(), done=node.done.is_set)
        node.stop()  # the player publishes nothing more before the context goes
        node.get_logger().info(f"{'done' if how == 'done' else 'stopped'}: {node.published} messages "
                               "published")
        return 1 if node.error else 0
    except (bag_io.BagError, ValueError) as exc:
        print(f"bag_replay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    from rclpy.utilities import remove_ros_args

    from stereo_depth_ros.commands.replay import add_arguments

    stopping.install()
    parser = argparse.ArgumentParser(prog="bag_replay", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = remove_ros_args(sys.argv if argv is None else ["bag_replay", *argv])[1:]
    try:
        return run(parser.parse_args(args))
    finally:
        stopping.finishing()


if __name__ == "__main__":
    sys.exit(main())
