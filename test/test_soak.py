"""The soak command: the frame account, memory and latency bookkeeping, and short real runs of
the node graph (synthetic camera -> depth node -> nearest-object node) over rclpy/DDS."""

import json
import math

import pytest

from stereo_depth_ros.backends.sgbm import SgbmBackend
from stereo_depth_ros.cli import main
from stereo_depth_ros.evaluation.soak import FrameAccount, MemoryTrace, percentiles, rss_bytes


def test_frame_account_books_every_frame_or_reports_the_gap():
    a = FrameAccount(published=100, received=97, unsynchronized=2, waiting=1, sets=94, processed=80,
                     refused={"dropped_busy": 12, "bad_image": 1}, in_worker=1, out=79)
    assert a.unaccounted == 0
    assert a.drops() == {"lost_before_node (DDS)": 3, "unsynchronized": 2, "dropped_busy": 12,
                         "bad_image": 1, "in_flight_at_end": 2, "lost_after_node (DDS)": 1}
    assert a.out + sum(a.drops().values()) == a.published
    # a set the node neither processed nor counted shows up
    b = FrameAccount(published=100, received=97, unsynchronized=2, waiting=1, sets=94, processed=79,
                     refused={"dropped_busy": 12, "bad_image": 1}, in_worker=1, out=79)
    assert b.unaccounted == 1 and b.as_dict()["unaccounted"] == 1


def test_memory_trace_and_percentiles():
    assert rss_bytes() > 10 * 2**20
    trace = MemoryTrace()
    for _ in range(4):
        trace.sample()
    trace.mark_warm()
    block = bytearray(64 * 2**20)   # 64 MiB held: growth after warm-up must see it
    block[::4096] = b"x" * len(block[::4096])
    trace.sample()
    s = trace.summary()
    assert s["growth_after_warmup_mib"] > 50 and s["rss_max_mib"] >= s["rss_end_mib"]
    del block
    p = percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert p["p50"] == 3.0 and p["max"] == 100.0 and 4.0 < p["p99"] < 100.0
    assert math.isnan(percentiles([])["p50"])


@pytest.mark.ros
def test_short_soak_run_accounts_for_every_frame(tmp_path, capsys):
    out = tmp_path / "soak.json"
    rc = main(["soak", "--frames", "40", "--rate", "15", "--width", "128", "--height", "96",
               "--max-disparity", "24", "--loop-frames", "4", "--json", str(out)])
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert rc == 0, text
    d = report["depth"]
    assert d["published"] == 40 and d["unaccounted"] == 0 and d["out"] > 0
    assert d["out"] + sum(d["drops"].values()) == d["published"]
    assert d["out"] == d["processed"] - d["drops"].get("lost_after_node (DDS)", 0)
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] < 10_000
    assert report["memory"]["samples"] >= 2 and report["memory"]["rss_end_mib"] > 0
    assert report["exceptions"] == [] and report["ok"]
    n = report["nearest"]
    assert n["in"] == d["processed"] and 0 < n["out"] <= n["in"]
    for words in ("in 40, out", "latency stamp -> disparity received: p50", "memory (RSS): start",
                  "nearest-object node", "result: PASS"):
        assert words in text


@pytest.mark.ros
def test_soak_fails_when_processing_raises(monkeypatch, capsys):
    def broken(self, left, right):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(SgbmBackend, "compute", broken)
    rc = main(["soak", "--frames", "10", "--rate", "20", "--width", "128", "--height", "96",
               "--max-disparity", "24", "--loop-frames", "2", "--no-nearest-object"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "backend_error" in text and "FAIL" in text and "backend error(s)" in text
    assert "unaccounted 0" in text   # the failing frames are still booked, under backend_error


def test_soak_refuses_bad_arguments(capsys):
    assert main(["soak", "--frames", "0"]) == 2
    assert "--frames >= 1" in capsys.readouterr().err
