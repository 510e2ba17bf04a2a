"""The ``stereo-depth`` command: one subcommand per module in ``stereo_depth_ros.commands``.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``stereo-depth --help`` stays fast and a command
whose optional dependency is missing does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from stereo_depth_ros import stopping

# name -> (module under stereo_depth_ros.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "synthetic camera -> depth node over real ROS 2; writes PNGs, PLY, metrics JSON"),
    "run": ("run", "start the node graph for a camera source (config/sources/<source>.yaml)"),
    "train": ("train", "train a stereo network (dispnet, fast, stereoconvnet)"),
    "finetune": ("finetune", "self-supervised fine-tuning on unlabeled stereo pairs"),
    "train-nearest": ("train_nearest", "train the nearest-object U-Net"),
    "eval": ("eval", "evaluate models on a dataset (EPE, D1, bad-N) with reports"),
    "eval-bag": ("eval_bag", "evaluate a model offline on a rosbag2"),
    "record": ("record", "record a rosbag2 from the synthetic camera (with ground truth)"),
    "replay": ("replay", "publish a rosbag2 with its timing and /clock"),
    "bench": ("bench", "latency, throughput and memory benchmarks"),
    "dds-bench": ("dds_bench", "large images over DDS across processes: into the depth node and out"),
    "soak": ("soak", "drive the node graph for N frames and report drops, latency, memory"),
    "chaos": ("chaos", "a bag looped at several rates into `run`: keeps processing, every frame counted, "
                       "memory flat"),
    "capture-airsim": ("capture_airsim", "record stereo pairs + DepthPlanar GT from a running AirSim"),
}

# Long-running commands that stop in order on SIGINT/SIGTERM (stereo_depth_ros.stopping): one
# line, exit 0. The others end on the first Ctrl-C with exit 130 (SIGTERM: the default death).
STOPPABLE = frozenset({"demo", "run", "replay", "record", "soak", "chaos"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stereo-depth", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # else called in-process: the caller's signal handlers come back
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)
        if args.version:
            from stereo_depth_ros import __version__

            print(__version__)
            return 0
        parser.print_help()
        return 0 if not argv else 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    if name in STOPPABLE:
        with stopping.handling(restore=not as_program):
            try:
                return _run_command(name, module_name, help_text, rest, as_program)
            finally:
                if as_program:
                    stopping.finishing()
    return _run_command(name, module_name, help_text, rest, as_program)


def _run_command(name: str, module_name: str, help_text: str, rest: list[str], as_program: bool) -> int:
    try:
        module = importlib.import_module(f"stereo_depth_ros.commands.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("stereo_depth_ros.commands"):
            print(f"stereo-depth: the '{name}' command is not available in this build", file=sys.stderr)
            return 2
        raise
    sub = argparse.ArgumentParser(prog=f"stereo-depth {name}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if as_program:  # a second Ctrl-C must not interrupt the exit
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"stereo-depth {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
