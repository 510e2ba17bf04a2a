"""``stereo-depth capture-airsim``: stereo pairs + DepthPlanar ground truth from a running AirSim.

Writes the AirSim capture folder (see stereo_depth_ros.data.airsim_capture) that the dataset
reader, ``stereo-depth eval`` and training use. Needs the simulator running with a stereo pair
in settings.json (config/airsim/settings.json) and the Python client: ``pip install airsim``
(or ``cosysairsim``). Fly or drive the vehicle meanwhile (or script it) to vary the scenes.
"""

from __future__ import annotations

import argparse
import sys
import time

from stereo_depth_ros.data.airsim_capture import (
    Calibration,
    CaptureError,
    CaptureWriter,
    baseline_from_positions,
    connect,
    convert_responses,
    import_client,
    intrinsics_from_fov,
    stereo_requests,
    vector,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="capture folder (created; appended to if it exists)")
    parser.add_argument("--frames", type=int, default=100, help="number of stereo frames (default 100)")
    parser.add_argument("--vehicle", default="", help="vehicle name in settings.json ('' = the default)")
    parser.add_argument("--left-camera", default="front_left")
    parser.add_argument("--right-camera", default="front_right")
    parser.add_argument("--host", default="127.0.0.1", help="AirSim API host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=41451, help="AirSim API port (default 41451)")
    parser.add_argument("--client", choices=["airsim", "cosysairsim"],
                        help="client package (default: airsim, else cosysairsim)")
    parser.add_argument("--baseline", type=float, default=0.0,
                        help="metres; default: the distance between the two cameras' poses")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between frames (default 0.5)")
    parser.add_argument("--pause", action=argparse.BooleanOptionalAction, default=True,
                        help="pause the simulation while a frame is captured (default: yes)")
    parser.add_argument("--timeout", type=float, default=10.0, help="connection timeout, seconds")


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        print("stereo-depth capture-airsim: --frames must be at least 1", file=sys.stderr)
        return 2
    try:
        module = import_client(args.client)
        client = connect(module, args.host, args.port, args.timeout)
        left_info = client.simGetCameraInfo(args.left_camera, vehicle_name=args.vehicle)
        right_info = client.simGetCameraInfo(args.right_camera, vehicle_name=args.vehicle)
        baseline = args.baseline or baseline_from_positions(vector(left_info.pose.position),
                                                            vector(right_info.pose.position))
        requests = stereo_requests(module, args.left_camera, args.right_camera)
        writer = None
        for i in range(args.frames):
            if args.pause:
                client.simPause(True)
            try:
                responses = client.simGetImages(requests, vehicle_name=args.vehicle)
                left_pose = client.simGetCameraInfo(args.left_camera, vehicle_name=args.vehicle).pose
            finally:
                if args.pause:
                    client.simPause(False)
            left, right, depth = convert_responses(responses)
            if writer is None:
                k = intrinsics_from_fov(left.shape[1], left.shape[0], float(left_info.fov))
                writer = CaptureWriter(args.out, Calibration(
                    fx=k.fx, fy=k.fy, cx=k.cx, cy=k.cy, baseline=baseline, width=k.width, height=k.height,
                    fov_degrees=float(left_info.fov), left_camera=args.left_camera,
                    right_camera=args.right_camera, vehicle=args.vehicle))
            index = writer.write(left, right, depth, {
                "time_stamp_ns": [int(getattr(r, "time_stamp", 0)) for r in responses],
                "left_position": vector(left_pose.position),
                "left_orientation_wxyz": vector(left_pose.orientation),
            })
            print(f"frame {index}: {args.out}", flush=True)
            if i + 1 < args.frames and args.interval > 0:
                time.sleep(args.interval)
    except CaptureError as exc:
        print(f"stereo-depth capture-airsim: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the RPC link failing mid-capture: frames written so far are kept
        print(f"stereo-depth capture-airsim: AirSim call failed ({type(exc).__name__}: {exc}); "
              f"frames captured so far are in {args.out}", file=sys.stderr)
        return 1
    print(f"captured {args.frames} frames into {args.out} (baseline {baseline:.4f} m)")
    return 0
