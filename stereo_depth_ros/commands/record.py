"""``stereo-depth record``: a rosbag2 of the synthetic camera's frames, with ground truth.

Frames are rendered straight from the generator (no DDS needed) and written as the messages
the live synthetic camera publishes: ``/left|right/image_rect`` (rgb8), ``/left|right/camera_info``,
``/ground_truth/disparity`` and ``/ground_truth/depth`` (32FC1), stamped ``1/rate`` apart.

``--layout airsim`` writes the same frames as AirSim's ROS 2 wrapper publishes them (what
``config/sources/airsim.yaml`` expects): ``/airsim_node/drone_1/front_left/Scene`` and
``.../front_right/Scene`` in bgr8, their ``camera_info`` with P[3] = 0 (no baseline), the right
camera stamped 25 ms after the left (rendered one after the other), and the left camera's
``DepthPlanar`` (32FC1, metres) as ground truth. A bag to try the airsim source without AirSim.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stereo_depth_ros import stopping
from stereo_depth_ros.evaluation import bag_io

# the live synthetic camera's default frame ids (ros/synthetic_camera.py)
LEFT_FRAME = "stereo_left_optical_frame"
RIGHT_FRAME = "stereo_right_optical_frame"


@dataclass
class RecordTopics:
    left: str = "/left/image_rect"
    right: str = "/right/image_rect"
    left_info: str = "/left/camera_info"
    right_info: str = "/right/camera_info"
    gt_disparity: str = "/ground_truth/disparity"
    gt_depth: str = "/ground_truth/depth"


def make_rig(width: int, height: int, baseline: float = 0.12):
    """The synthetic camera's rig at this size (same intrinsics as the live camera's defaults)."""
    from stereo_depth_ros.data.synthetic import StereoRig

    return StereoRig.for_size(width, height, baseline=baseline)


def frame_messages(sample, stamp_ns: int, topics: RecordTopics | None = None) -> list[tuple[str, object]]:
    """(topic, rosbags message) for one generator sample, as the live synthetic camera sends them."""
    topics = topics or RecordTopics()
    geom = sample.rig.geometry()
    return [
        (topics.left_info, bag_io.camera_info(geom, False, stamp_ns, LEFT_FRAME)),
        (topics.right_info, bag_io.camera_info(geom, True, stamp_ns, RIGHT_FRAME)),
        (topics.left, bag_io.numpy_to_image(sample.left, "rgb8", stamp_ns, LEFT_FRAME)),
        (topics.right, bag_io.numpy_to_image(sample.right, "rgb8", stamp_ns, RIGHT_FRAME)),
        (topics.gt_disparity, bag_io.numpy_to_image(sample.disparity, "32FC1", stamp_ns, LEFT_FRAME)),
        (topics.gt_depth, bag_io.numpy_to_image(sample.depth, "32FC1", stamp_ns, LEFT_FRAME)),
    ]


AIRSIM_SKEW_NS = 25_000_000  # AirSim renders the right camera after the left


def airsim_frame_messages(sample, stamp_ns: int, vehicle: str = "drone_1", left_camera: str = "front_left",
                          right_camera: str = "front_right", skew_ns: int = AIRSIM_SKEW_NS
                          ) -> list[tuple[str, object, int]]:
    """(topic, rosbags message, bag time) for one sample as AirSim's ROS 2 wrapper sends it."""
    geom = sample.rig.geometry()
    base = f"/airsim_node/{vehicle}"
    left_frame, right_frame = f"{left_camera}_optical", f"{right_camera}_optical"
    right_ns = stamp_ns + skew_ns
    infos = []
    for right, stamp, frame in ((False, stamp_ns, left_frame), (True, right_ns, right_frame)):
        info = bag_io.camera_info(geom, right, stamp, frame)
        info.p[3] = 0.0  # AirSim publishes no baseline
        infos.append(info)
    return [
        (f"{base}/{left_camera}/Scene/camera_info", infos[0], stamp_ns),
        (f"{base}/{left_camera}/Scene", bag_io.numpy_to_image(sample.left[:, :, ::-1], "bgr8", stamp_ns,
                                                              left_frame), stamp_ns),
        (f"{base}/{left_camera}/DepthPlanar", bag_io.numpy_to_image(sample.depth, "32FC1", stamp_ns,
                                                                    left_frame), stamp_ns),
        (f"{base}/{right_camera}/Scene/camera_info", infos[1], right_ns),
        (f"{base}/{right_camera}/Scene", bag_io.numpy_to_image(sample.right[:, :, ::-1], "bgr8", right_ns,
                                                               right_frame), right_ns),
    ]


LAYOUTS = ("synthetic", "airsim")


def record_bag(out: str | Path, frames: int, width: int = 640, height: int = 480, rate: float = 10.0,
               seed: int = 0, storage: str = "sqlite3", max_disparity: float = 128.0,
               start_ns: int | None = None, progress: bool = False, baseline: float = 0.12,
               photometric: bool = True, layout: str = "synthetic", vehicle: str = "drone_1"
               ) -> dict[str, int]:
    """Write ``frames`` synthetic frames to a new bag at ``out``; returns message counts per topic.
    ``layout`` airsim names the topics after ``vehicle`` as AirSim does."""
    from stereo_depth_ros.data.synthetic import SceneSequence

    if frames < 1:
        raise ValueError("--frames must be at least 1")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown --layout {layout!r}: use {' or '.join(LAYOUTS)}")
    if rate <= 0:
        raise ValueError("--rate must be > 0")
    seq = SceneSequence(seed, make_rig(width, height, baseline), max_disparity=max_disparity,
                        photometric=photometric)
    start = time.time_ns() if start_ns is None else start_ns
    indices = range(frames)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="record", unit="frame")
    with bag_io.BagWriter(out, storage) as bag:
        for i in indices:
            if stopping.requested():  # SIGINT/SIGTERM: the frames so far make a complete bag
                break
            stamp = start + int(round(i * 1e9 / rate))
            if layout == "airsim":
                for topic, msg, t in airsim_frame_messages(seq.frame(i), stamp, vehicle):
                    bag.write(topic, msg, t)
                continue
            for topic, msg in frame_messages(seq.frame(i), stamp):
                bag.write(topic, msg, stamp)
        return dict(bag.counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--frames", type=int, default=30, help="number of stereo frames (default 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=10.0,
                        help="frames per second of the stamps (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="scene sequence seed (default 0)")
    parser.add_argument("--max-disp", type=float, default=128.0, help="largest disparity in the scenes")
    parser.add_argument("--baseline", type=float, default=None,
                        help="stereo baseline in metres (default 0.12; with --layout airsim the airsim "
                             "source's baseline parameter, which its camera_info cannot carry)")
    parser.add_argument("--no-photometric", action="store_true", help="no camera noise/vignetting/gain")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument("--layout", choices=LAYOUTS, default="synthetic",
                        help="topic names and timing: the synthetic camera's (default) or AirSim's "
                             "(bgr8, P[3] = 0, right stamps +25 ms, DepthPlanar ground truth)")


def airsim_baseline() -> float:
    """The baseline config/sources/airsim.yaml gives the depth node (AirSim's P[3] is 0)."""
    from stereo_depth_ros.sources import load_source

    return float(load_source("airsim").depth_node["baseline"])


def run(args: argparse.Namespace) -> int:
    if args.baseline is None:
        args.baseline = airsim_baseline() if args.layout == "airsim" else 0.12
    try:
        counts = record_bag(args.out, args.frames, args.width, args.height, args.rate, args.seed,
                            args.storage, args.max_disp, progress=True, baseline=args.baseline,
                            photometric=not args.no_photometric, layout=args.layout)
    except (ValueError, bag_io.BagError) as exc:
        print(f"stereo-depth record: {exc}", file=sys.stderr)
        return 2
    if stopping.requested():
        written = max(counts.values(), default=0)
        print(f"stereo-depth record: {stopping.reason()} received: stopped after {written} of "
              f"{args.frames} frames", file=sys.stderr)
    print(f"wrote {args.out} ({args.storage}):")
    for topic, n in counts.items():
        print(f"  {topic}: {n} messages")
    return 0
