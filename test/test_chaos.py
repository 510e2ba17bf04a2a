"""The whole graph under a looped bag: `stereo-depth run` fed by a bag replayed in a loop at
several rates, with AirSim's timing (right camera +25 ms, P[3] = 0, bgr8) and with the synthetic
camera's (exact stamps, /clock going back at every loop). About a minute per layout here; the
long variant is the command: ``stereo-depth chaos --layout both --minutes 30``."""

from __future__ import annotations

import pytest

from stereo_depth_ros.evaluation import chaos


def test_epochs_loops_and_silences_are_counted_from_stamps_and_times():
    assert chaos.epochs([]) == 0
    assert chaos.epochs([1, 2, 3]) == 1
    assert chaos.epochs([1, 2, 3, 1, 2, 1]) == 3
    starts = [0.0, 10.0, 20.0]
    times = [1.0, 2.0, 11.0, 25.0, 31.0]
    assert chaos.per_loop(starts, times, 30.0) == [2, 1, 1]
    assert chaos.silent_after(starts, times, 3.0, end=40.0) == [2]        # nothing within 3 s of 20.0
    assert chaos.silent_after(starts, times, 3.0, end=22.0) == []         # 20.0 too close to the end
    assert chaos.silent_after(starts, times, 3.0, end=40.0, gaps=[(21.0, 22.0)]) == []  # silenced
    assert chaos.clean_passes(starts, []) == 2 and chaos.clean_passes(starts, [(9.0, 10.5)]) == 0


def test_the_account_from_diagnostics_names_every_frame():
    values = {"received left/image_rect": "100", "unsynchronized left/image_rect": "3", "processed": "80",
              "dropped_busy": "15", "out_of_order": "1", "in_flight": "1", "backend_error": "0"}
    a = chaos.account_from_status(values, ("dropped_busy", "out_of_order", "backend_error"), published=102,
                                  out=79)
    assert a.unaccounted == 0
    assert a.drops() == {"lost between processes (DDS)": 2, "unsynchronized": 3, "dropped_busy": 15,
                         "out_of_order": 1, "in_flight_at_end": 1, "lost after the node (DDS)": 1}
    values["processed"] = "79"  # one frame the node cannot explain
    assert chaos.account_from_status(values, ("dropped_busy",), 102, 79).unaccounted == 2


def _report(**changes):
    report = {"graph_process": {"exit_status": 0, "tracebacks": [], "died_early": False},
              "loops": {"completed": 5, "clean": 5, "grace_s": 10.0, "gaps": ["right camera"], "gap_s": 4.0},
              "outputs": {"disparity": {"epochs": 6, "silent_after_loops": []},
                          "distance": {"epochs": 2, "silent_after_loops": []}},
              "depth": {"unaccounted": 0}, "depth_counters": {"backend_error": "0", "input_stall": "1"},
              "nearest_counters": {"error": "0"}, "memory": {"growth_after_warmup_mib": 1.0}}
    for path, value in changes.items():
        *keys, last = path.split(".")
        node = report
        for k in keys:
            node = node[k]
        node[last] = value
    return report


@pytest.mark.parametrize(("change", "value", "said"), [
    ("graph_process.exit_status", -2, "exit status -2"),
    ("graph_process.tracebacks", ["Traceback"], "printed Traceback"),
    ("graph_process.died_early", True, "died"),
    ("outputs.disparity.epochs", 2, "output in 2 loops of the 5 completed"),
    ("outputs.distance.silent_after_loops", [3], "distance: no output within 10 s"),
    ("depth", None, "no /diagnostics"),
    ("depth.unaccounted", 2, "2 frame(s) unaccounted"),
    ("depth_counters.backend_error", "1", "depth node: 1 unexpected"),
    ("depth_counters.input_stall", "0", "did not report a stall"),
    ("nearest_counters.error", "2", "nearest node: 2 unexpected"),
    ("memory.growth_after_warmup_mib", 40.0, "memory grew 40.0 MiB"),
])
def test_each_failure_is_named(change, value, said):
    assert chaos.failures(_report(), 16.0) == []
    found = chaos.failures(_report(**{change: value}), 16.0)
    assert len(found) == 1 and said in found[0], found


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["airsim", "synthetic"])
def test_run_keeps_going_through_a_looped_bag(layout, tmp_path):
    from stereo_depth_ros.ros.chaos_graph import ChaosConfig, run_chaos

    # a 2 s bag (20 frames at 10 Hz): its loop is a jump back of more than a second, which the
    # synchronizer and the node take as a new time line at once (a shorter jump is reordering
    # until a few frames in a row confirm it, and those frames are refused, counted)
    cfg = ChaosConfig(layout=layout, rates=(1.0, 4.0, 2.0, 0.5), seconds_per_rate=5.0, frames=20, gap_s=3.0,
                      width=128, height=96, max_disparity=16.0)
    report = run_chaos(cfg, tmp_path, progress=print)
    print(chaos.format_report(report))
    assert report["loops"]["completed"] >= 10 and report["depth"] is not None  # it did get tested
    assert report["ok"], report["failures"]
