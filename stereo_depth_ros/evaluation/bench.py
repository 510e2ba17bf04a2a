"""Latency, throughput and memory of the backends, the depth node's per-stage overhead, and the
vectorized PointCloud2 build against a per-point reference: figures, never assertions.

Every size uses one synthetic frame (held-out seed) and measures OpenCV SGBM on that same
frame in the same run, so each figure has its baseline next to it.

- model latency: ``backend.compute`` wall time (CUDA synchronized), after warm-up runs;
  median, p90 and throughput (pairs/s = 1000 / mean ms).
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during the runs; on the CPU the
  process RSS peak above its level before the runs, sampled every 2 ms in a separate pass.
- node stages: a real DepthNode over in-process DDS: a harness publishes the four input
  topics, a sink subscribes disparity, depth and points2 (so every output is built and sent),
  and the node's own ``last_timings`` give sync, conversion, model, cloud and publish. Then
  again with no subscriber (the node's lazy_outputs skips every output): both are reported,
  labelled; the target is judged on the subscribed figure.
- PointCloud2: ``build_cloud`` (reprojection done, packing + bytes) vs ``build_cloud_reference``
  (the same bytes one point at a time in Python), checked equal; and the node's path,
  ``CloudBuilder.build`` (from the disparity: reprojection included, into a reused buffer).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stereo_depth_ros.evaluation.report import markdown_table, text_table

TARGETS = {
    "default_cpu_x_sgbm": 2.0,  # the shipped default model, 640x480, 2 CPU cores, x SGBM's time (issue 11)
    "default_gpu_ms": 4.0,      # the shipped default model, 640x480, fp16, CUDA GPU (issue 11)
    "fast_gpu_ms": 4.0,       # fast model, 640x480, fp16, H100-class GPU
    "fast_cpu_ms": 150.0,     # fast model, 640x480, 2 CPU cores
    "node_overhead_ms": 2.0,  # sync + conversion + cloud + publish at 640x480 on the CPU
    "cloud_speedup": 20.0,    # vectorized vs per-point PointCloud2 payload
}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().strip().split("x"))
        except ValueError:
            raise ValueError(f"size {part!r} is not WIDTHxHEIGHT (e.g. 640x480)") from None
        if w < 32 or h < 32:
            raise ValueError(f"size {part!r} is too small (at least 32x32)")
        sizes.append((w, h))
    return sizes


@dataclass
class BenchBackend:
    label: str
    factory: Callable[[], Any]  # builds a fresh instance (the CPU memory pass starts from one)
    precision: str = "fp32"
    note: str = ""
    backend: Any = None

    def __post_init__(self) -> None:
        if self.backend is None:
            self.backend = self.factory()


@dataclass
class SizeResult:
    size: str
    backend: str
    device: str
    precision: str
    median_ms: float
    p90_ms: float
    throughput: float
    peak_mem_mb: float | None
    mem_kind: str
    sgbm_ms: float
    node: dict[str, float] = field(default_factory=dict)  # subscribers on every output
    node_unsubscribed: dict[str, float] = field(default_factory=dict)  # none: outputs skipped
    cpu_ms: float | None = None  # process CPU time per call, all threads (idle wall >= cpu / threads)
    note: str = ""


def make_frame(width: int, height: int):
    """A held-out synthetic frame at this size, disparities up to 128 px scaled with the width."""
    from stereo_depth_ros.commands.record import make_rig
    from stereo_depth_ros.data.synthetic import render_random
    from stereo_depth_ros.evaluation.run_dataset import EVAL_SEED_START

    return render_random(EVAL_SEED_START, make_rig(width, height), max_disparity=128.0 * width / 640.0)


def _sync(device: Any) -> None:
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int, device: Any = "cpu") -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fix_mmap_threshold(threshold: int = 64 * 1024) -> bool:
    """Make glibc serve every allocation above ``threshold`` with its own mmap, so freed tensors
    return to the OS and the RSS follows the live memory (for the CPU memory pass, run after all
    timings: it makes allocations slower). False where this is not glibc."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def peak_memory_mb(fn: Callable[[], Any], device: Any, runs: int = 2) -> tuple[float | None, str]:
    """(peak MB, what it is) of running ``fn`` ``runs`` times. On the CPU, ``fn`` should build a
    fresh backend and run it, so buffers a backend keeps between calls are counted."""
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(runs):
            fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max_memory_allocated"
    if not os.path.exists("/proc/self/statm"):
        return None, "not measured (no /proc)"
    import gc

    gc.collect()
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        for _ in range(runs):
            fn()
    finally:
        stop.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - base) / 2**20, ("CPU: process RSS peak while a fresh backend is built and run, "
                                      "above the level before (sampled every 2 ms; a lower bound: "
                                      "small blocks reuse memory the process already holds)")


def _stats(times: Sequence[float]) -> tuple[float, float, float]:
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    return median, p90, 1000.0 / statistics.fmean(times)


# --------------------------------------------------------------------------- backends

def make_backends(names: Sequence[str], device: str, precisions: Sequence[str] | None,
                  max_disp: float) -> list[BenchBackend]:
    """``sgbm``, ``learned`` (shipped weights, else an untrained ``fast`` net: timing only) or a
    checkpoint path; learned models once per precision (fp16 and fp32 on CUDA by default)."""
    from stereo_depth_ros.backends import make_backend
    from stereo_depth_ros.backends.learned import LearnedBackend
    from stereo_depth_ros.estimator import StereoEstimator, select_device
    from stereo_depth_ros.evaluation.models import sgbm_range
    from stereo_depth_ros.paths import WEIGHTS_DIR

    dev = select_device(device)
    if precisions is None:
        precisions = ["fp16", "fp32"] if dev.type == "cuda" else ["fp32"]
    out: list[BenchBackend] = []
    for name in names:
        if name == "sgbm":
            rng = sgbm_range(max_disp)
            out.append(BenchBackend("sgbm", lambda r=rng: make_backend("sgbm", disparity_range=r)))
            continue
        for precision in precisions:
            if name == "learned" and not (WEIGHTS_DIR / "default_stereo.pt").is_file():
                def factory(p=precision):
                    est = StereoEstimator.untrained("fast", device=dev, precision=p)
                    return LearnedBackend(estimator=est)
                bb = BenchBackend("fast (untrained)", factory, precision,
                                  "untrained 'fast' network (no shipped weights): timing only")
            else:
                model = "default" if name == "learned" else name

                def factory(m=model, p=precision):
                    return make_backend("learned", model=m, device=str(dev), precision=p)
                bb = BenchBackend("", factory, precision)
                est = bb.backend.estimator
                bb.note = est.describe()
                bb.label = f"{est.arch} ({'shipped' if name == 'learned' else os.path.basename(name)})"
            bb.precision = bb.backend.estimator.precision
            bb.label = f"{bb.label} {bb.precision}"
            out.append(bb)
    return out


# --------------------------------------------------------------------------- point cloud

def cloud_bench(sample: Any, repeats: int) -> dict[str, float]:
    from stereo_depth_ros.geometry import reproject
    from stereo_depth_ros.pointcloud import CloudBuilder, build_cloud, build_cloud_reference

    geometry = sample.rig.geometry()
    disparity = sample.disparity.astype(np.float32) - np.float32(geometry.doffs)
    disparity[::7, ::5] = np.nan  # some invalid pixels, as a real disparity map has
    points = reproject(disparity, geometry)
    vec = time_calls(lambda: build_cloud(points, sample.left).tobytes(), repeats, 1)
    t0 = time.perf_counter()
    ref_bytes = build_cloud_reference(points, sample.left)
    ref_ms = (time.perf_counter() - t0) * 1000.0
    same = ref_bytes == build_cloud(points, sample.left).tobytes()
    vec_ms = statistics.median(vec)
    builder = CloudBuilder()  # the depth node's path: disparity in, message buffer out
    node_path = time_calls(lambda: builder.build(disparity, geometry, sample.left), repeats, 1)
    same_node = bytes(builder.build(disparity, geometry, sample.left).buffer) == ref_bytes
    return {"vector_ms": vec_ms, "reference_ms": ref_ms, "speedup": ref_ms / vec_ms, "identical": same,
            "node_path_ms": statistics.median(node_path), "node_path_identical": same_node}


# --------------------------------------------------------------------------- the whole run

@dataclass
class BenchReport:
    rows: list[SizeResult]
    clouds: dict[str, dict[str, float]]
    notes: list[str]
    environment: dict[str, Any]


def run_bench(sizes: Sequence[tuple[int, int]], backend_names: Sequence[str], device: str = "auto",
              precisions: Sequence[str] | None = None, repeats: int = 10, warmup: int = 2,
              node: bool = True, node_repeats: int | None = None, cloud: bool = True,
              log: Callable[[str], None] = print) -> BenchReport:
    from stereo_depth_ros.backends import make_backend
    from stereo_depth_ros.evaluation.models import sgbm_range
    from stereo_depth_ros.evaluation.report import environment

    env = environment() | {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        env["load_before"] = round(os.getloadavg()[0], 2)
    rows: list[SizeResult] = []
    clouds: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    node_bench = None
    cpu_memory: list[tuple[SizeResult, Callable[[], Any]]] = []
    if node:
        try:
            from stereo_depth_ros.ros.bench_node import NodeBench

            node_bench = NodeBench()
        except Exception as exc:  # no DDS here: the model figures still come
            notes.append(f"node stages not measured: {exc}")
    try:
        for w, h in sizes:
            size = f"{w}x{h}"
            log(f"[{size}] rendering the frame")
            sample = make_frame(w, h)
            max_disp = 128.0 * w / 640.0
            sgbm = make_backend("sgbm", disparity_range=sgbm_range(max_disp))
            sgbm_med = statistics.median(time_calls(lambda s=sgbm, f=sample: s.compute(f.left, f.right),
                                                    repeats, 1))
            for bb in make_backends(backend_names, device, precisions, max_disp):
                if bb.note and f"{bb.label}: {bb.note}" not in notes:
                    notes.append(f"{bb.label}: {bb.note}")
                dev = bb.backend.device

                def call(b=bb.backend, f=sample):
                    return b.compute(f.left, f.right)

                log(f"[{size}] {bb.label}: timing the model")
                runs_warm = warmup if bb.label != "sgbm" else 1
                cpu0 = time.process_time()
                times = time_calls(call, repeats, runs_warm, dev)
                cpu_ms = (time.process_time() - cpu0) * 1000.0 / (repeats + runs_warm)
                median, p90, tput = _stats(times)
                mem, kind = peak_memory_mb(call, dev) if dev.type == "cuda" else (None, "")
                row = SizeResult(size, bb.label, str(dev), bb.precision, median, p90, tput, mem, kind,
                                 sgbm_med, note=bb.note, cpu_ms=cpu_ms)
                if dev.type != "cuda":
                    def fresh(b=bb, f=sample):
                        backend = b.factory()
                        for _ in range(2):
                            backend.compute(f.left, f.right)
                    cpu_memory.append((row, fresh))
                if node_bench is not None:
                    log(f"[{size}] {bb.label}: through the depth node")
                    try:
                        n = node_repeats or max(3, repeats // 2)
                        row.node = node_bench.run(bb.backend, sample, n, 1, subscribed=True)
                        row.node_unsubscribed = node_bench.run(bb.backend, sample, n, 1, subscribed=False)
                    except Exception as exc:
                        notes.append(f"node stages for {bb.label} at {size} failed: {exc}")
                rows.append(row)
            if cloud:
                log(f"[{size}] PointCloud2: vectorized vs per-point reference")
                clouds[size] = cloud_bench(sample, max(3, repeats // 2))
    finally:
        if node_bench is not None:
            node_bench.close()
    if cpu_memory:  # after every timing: the fixed mmap threshold slows allocations down
        log("CPU memory pass")
        exact = fix_mmap_threshold()
        try:
            for row, call in cpu_memory:
                row.peak_mem_mb, row.mem_kind = peak_memory_mb(call, "cpu", runs=1)
                if not exact:
                    row.mem_kind += " (allocator may keep freed memory: a lower bound)"
        finally:
            if exact:  # back to what a long-running process converges to (glibc's 64-bit maximum)
                fix_mmap_threshold(32 * 2**20)
    return BenchReport(rows, clouds, notes, env)


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


def tables(rep: BenchReport) -> dict[str, tuple[list[str], list[list[str]]]]:
    model = (["backend", "size", "device", "median ms", "p90 ms", "pairs/s", "CPU ms", "peak MB", "SGBM ms",
              "x SGBM"],
             [[r.backend, r.size, r.device, _f(r.median_ms), _f(r.p90_ms), _f(r.throughput), _f(r.cpu_ms),
               _f(r.peak_mem_mb, "{:.1f}"), _f(r.sgbm_ms), _f(r.median_ms / r.sgbm_ms, "{:.2f}")]
              for r in rep.rows])
    node = (["backend", "size", "subscribers", "sync", "conversion", "model", "cloud", "publish", "overhead",
             "overhead/SGBM"],
            [[r.backend, r.size, label] + [_f(stages.get(k), "{:.2f}") for k in
                                           ("sync", "conversion", "model", "cloud", "publish", "overhead")]
             + [_f(stages["overhead"] / r.sgbm_ms, "{:.3f}")]
             for r in rep.rows
             for label, stages in (("all", r.node), ("none", r.node_unsubscribed)) if stages])
    cloud = (["size", "vectorized ms", "per-point ms", "speedup", "same bytes", "node path ms", "same bytes"],
             [[s, _f(c["vector_ms"], "{:.2f}"), _f(c["reference_ms"], "{:.0f}"), _f(c["speedup"], "{:.0f}x"),
               "yes" if c["identical"] else "NO", _f(c.get("node_path_ms"), "{:.2f}"),
               {True: "yes", False: "NO"}.get(c.get("node_path_identical"), "-")]
              for s, c in rep.clouds.items()])
    return {"model": model, "node": node, "cloud": cloud}


def targets(rep: BenchReport) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for issues 4 and 11; 'not measured' where this run can't say."""
    out = []

    def find(pred: Callable[[SizeResult], bool]) -> SizeResult | None:
        return next((r for r in rep.rows if pred(r)), None)

    shipped = lambda r: "(shipped)" in r.backend and r.size == "640x480"  # noqa: E731
    cpu = find(lambda r: shipped(r) and r.device == "cpu")
    limit = TARGETS["default_cpu_x_sgbm"]
    out.append((f"default model 640x480 on the CPU ({rep.environment.get('cpus')} cores here) <= "
                f"{limit:g} x SGBM (stereo_image_proc settings, same range, same run)",
                f"{cpu.median_ms:.1f} ms = {cpu.median_ms / cpu.sgbm_ms:.2f} x SGBM ({cpu.sgbm_ms:.1f} ms)"
                if cpu else "-",
                ("met" if cpu.median_ms <= limit * cpu.sgbm_ms else "missed") if cpu
                else "not measured (run with --backends sgbm,learned at 640x480)"))
    gpu = find(lambda r: shipped(r) and r.device.startswith("cuda") and r.precision == "fp16")
    out.append((f"default model 640x480 fp16 on a CUDA GPU <= {TARGETS['default_gpu_ms']:g} ms",
                _f(gpu.median_ms, "{:.2f} ms") if gpu else "-",
                (("met" if gpu.median_ms <= TARGETS["default_gpu_ms"] else "missed")
                 + f" on {rep.environment.get('gpu')}") if gpu
                else "not measured (no CUDA device in this run)"))

    fast = lambda r: r.backend.startswith("fast") and r.size == "640x480"  # noqa: E731
    gpu = find(lambda r: fast(r) and r.device.startswith("cuda") and r.precision == "fp16")
    out.append(("fast 640x480 fp16 on an H100-class GPU <= 4 ms",
                _f(gpu.median_ms, "{:.2f} ms") if gpu else "-",
                (("met" if gpu.median_ms <= TARGETS["fast_gpu_ms"] else "missed")
                 + f" on {rep.environment.get('gpu')}") if gpu
                else "not measured (no CUDA device in this run)"))
    cpu = find(lambda r: fast(r) and r.device == "cpu")
    out.append((f"fast 640x480 on the CPU ({rep.environment.get('cpus')} cores here) <= 150 ms",
                _f(cpu.median_ms, "{:.1f} ms") if cpu else "-",
                ("met" if cpu.median_ms <= TARGETS["fast_cpu_ms"] else "missed") if cpu else "not measured"))
    nodes = [r for r in rep.rows if r.size == "640x480" and r.node and r.device == "cpu"]
    if nodes:  # the overhead does not depend on the backend: the median over them, and the range
        overheads = sorted(r.node["overhead"] for r in nodes)
        mid = statistics.median(overheads)
        sgbm_ms = nodes[0].sgbm_ms
        verdict = "met" if mid <= TARGETS["node_overhead_ms"] else "missed"
        idle = [r.node_unsubscribed["overhead"] for r in nodes if r.node_unsubscribed]
        idle_text = (f"; with no subscriber (outputs skipped) {statistics.median(idle):.2f} ms"
                     if idle else "")
        out.append(("node overhead beyond the model at 640x480 on the CPU <= 2 ms (~1/10 of SGBM)",
                    f"{mid:.2f} ms with subscribers on disparity, depth and points2 (median over "
                    f"{len(nodes)} backends, range {overheads[0]:.1f}-{overheads[-1]:.1f}) = "
                    f"{mid / sgbm_ms:.3f} x SGBM ({sgbm_ms:.1f} ms){idle_text}", verdict))
    else:
        out.append(("node overhead at 640x480 on the CPU <= 2 ms", "-", "not measured (640x480 not run)"))
    c = rep.clouds.get("640x480") or (next(iter(rep.clouds.values())) if rep.clouds else None)
    out.append(("PointCloud2 vectorized >= 20x the per-point reference",
                _f(c["speedup"], "{:.0f}x") if c else "-",
                ("met" if c["speedup"] >= TARGETS["cloud_speedup"] else "missed") if c else "not measured"))
    return out


def format_report(rep: BenchReport) -> str:
    t = tables(rep)
    env = rep.environment
    lines = [f"stereo-depth bench, {env.get('date')}; torch {env.get('torch')}, "
             f"{env.get('torch_threads')} torch threads, {env.get('cpus')} CPUs"
             + (f", GPU {env['gpu']}" if env.get("gpu") else ", no GPU")
             + (f"; load average {env['load_before']} when it started" if "load_before" in env else ""), "",
             "Model latency (backend.compute, after warm-up; CPU ms = process CPU time per call over all "
             "threads; peak memory: " +
             "; ".join(sorted({r.mem_kind for r in rep.rows})) + ")", text_table(*t["model"]), ""]
    if t["node"][1]:
        lines += ["Depth node stages, ms (median; real node over in-process DDS; overhead = total - model; "
                  "subscribers: all = disparity, depth and points2 subscribed, none = no subscriber, "
                  "outputs skipped by lazy_outputs)",
                  text_table(*t["node"]), ""]
    if t["cloud"][1]:
        lines += ["PointCloud2 payload (xyz+rgb, organized): build_cloud vs per-point Python reference; "
                  "node path = CloudBuilder.build from the disparity (reprojection included)",
                  text_table(*t["cloud"]), ""]
    lines += ["Targets (issues 4 and 11)"]
    lines += [f"  {name}: {measured} -> {verdict}" for name, measured, verdict in targets(rep)]
    if env.get("load_before", 0) > (env.get("cpus") or 1) * 0.5:
        lines += ["", f"WARNING: the machine was busy (load {env['load_before']} on {env.get('cpus')} CPUs): "
                  "CPU figures are slower than on an idle machine"]
    if rep.notes:
        lines += ["", "Notes"] + [f"  {n}" for n in rep.notes]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU as lscpu/cpuinfo names it (for the record of a run)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def format_markdown(rep: BenchReport, command: str = "stereo-depth bench") -> str:
    """The run as a Markdown section (for docs/benchmarks.md)."""
    t = tables(rep)
    env = rep.environment
    hw = f"{cpu_model()}, {env.get('cpus')} CPUs" + (f", GPU {env['gpu']}" if env.get("gpu") else ", no GPU")
    lines = [f"### {env.get('date')}: {hw}", "",
             f"`{command}`; torch {env.get('torch')} ({env.get('torch_threads')} threads)"
             + (f"; load average {env['load_before']} when it started" if "load_before" in env else "") + ".",
             "", "Model latency (`backend.compute`, after warm-up; CPU ms = process CPU time per call over "
             "all threads, so on an idle machine wall >= CPU ms / threads). Peak memory: "
             + "; ".join(sorted({r.mem_kind for r in rep.rows})) + ".", "",
             markdown_table(*t["model"]), ""]
    if t["node"][1]:
        lines += ["Depth node stages, ms (median; real node over in-process DDS; overhead = total - model; "
                  "subscribers: `all` = disparity, depth and points2 subscribed, so every output is built "
                  "and sent; `none` = no subscriber, the node's lazy_outputs skips them):", "",
                  markdown_table(*t["node"]), ""]
    if t["cloud"][1]:
        lines += ["PointCloud2 payload (xyz+rgb, organized), `build_cloud` (points given) vs the per-point "
                  "Python reference; node path = `CloudBuilder.build` from the disparity, reprojection "
                  "included, into the reused message buffer:",
                  "", markdown_table(*t["cloud"]), ""]
    lines += ["Targets (issues 4 and 11):", ""]
    lines += [f"- {name}: **{measured}** -> {verdict}" for name, measured, verdict in targets(rep)]
    if rep.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in rep.notes]
    return "\n".join(lines) + "\n"
