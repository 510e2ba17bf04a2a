"""`stereo-depth bench` runs on tiny sizes and prints its tables (figures are never asserted)."""

import json

import pytest

from stereo_depth_ros.cli import main
from stereo_depth_ros.evaluation.bench import parse_sizes


def test_bench_prints_model_and_cloud_tables_and_targets(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--sizes", "64x48", "--backends", "sgbm,learned", "--repeats", "1", "--warmup", "0",
               "--no-node", "--threads", "1", "--json", str(out), "--markdown", str(tmp_path / "b.md")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Model latency" in printed and "PointCloud2" in printed and "Targets (issues 4 and 11)" in printed
    assert "untrained" in printed or "shipped" in printed  # says which learned model it timed
    data = json.loads(out.read_text())
    backends = [r["backend"] for r in data["rows"]]
    assert backends[0] == "sgbm" and len(backends) == 2
    for row in data["rows"]:
        assert row["median_ms"] > 0 and row["sgbm_ms"] > 0 and row["size"] == "64x48"
        assert row["peak_mem_mb"] is not None and row["mem_kind"]
    assert data["clouds"]["64x48"]["identical"] is True
    assert data["clouds"]["64x48"]["node_path_identical"] is True
    md = (tmp_path / "b.md").read_text()
    assert md.startswith("### ") and "| sgbm | 64x48 |" in md and "Targets (issues 4 and 11)" in md


@pytest.mark.ros
def test_bench_measures_the_node_stages(capsys):
    assert main(["bench", "--sizes", "64x48", "--backends", "sgbm", "--repeats", "2", "--warmup", "0",
                 "--no-cloud", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Depth node stages" in printed
    lines = printed.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Depth node stages")))
    rows = [line.split() for line in lines[start:] if line.startswith("sgbm")]
    # with every output subscribed, then with none (outputs skipped), each labelled
    assert [r[2] for r in rows[:2]] == ["all", "none"]
    assert all(len(r) == 10 for r in rows[:2])  # backend, size, subscribers, 6 stages, overhead/SGBM


def test_bench_rejects_bad_sizes(capsys):
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_sizes("640by480")
    assert main(["bench", "--sizes", "10x10"]) == 2
    assert "too small" in capsys.readouterr().err
