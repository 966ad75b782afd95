"""The peers section's arithmetic and its reading of the peer's report, on a tiny tomogram with a stand-in for
MemBrain-seg (the real peer is installed and run only by `cryodiffseg bench --sections peers`)."""

import json
import stat
import sys

import numpy as np
import pytest

from cryodiffseg.benchmark import peers
from cryodiffseg.benchmark.membrain_peer import expected_windows
from cryodiffseg.benchmark.models import random_membrane_model
from cryodiffseg.benchmark.report import _peers
from cryodiffseg.benchmark.speed import child_usage, write_large_tomogram


def test_windows_follow_the_sliding_window_stride():
    assert expected_windows((128, 256, 256), 160, 0.5) == 1 * 3 * 3  # a short axis takes one padded window
    assert expected_windows((256, 1024, 1024), 160, 0.5) == 3 * 12 * 12  # stride 80: ceil((1024 - 160) / 80) + 1


def test_a_stopped_peer_run_is_extrapolated_to_every_window():
    report = {"complete": False, "windows_run": 3, "windows_expected": 432, "s_per_window_median": 40.0,
              "s_before_first_window": 12.0, "s_after_last_window": None, "wall_s": 140.0}
    estimate = peers.peer_estimate(report, {"wall_s": 150.0, "peak_rss_GiB": 9.0})
    # 10 s of start-up outside the script, 12 s before the first window, 432 windows of 40 s
    assert estimate["one_pass_s"] == pytest.approx(10 + 12 + 432 * 40)
    assert estimate["default_8_passes_s"] == pytest.approx(8 * estimate["one_pass_s"])
    assert estimate["peak_is_lower_bound"] and not estimate["complete"]
    whole = peers.peer_estimate({**report, "complete": True, "windows_run": 432}, {"wall_s": 17000.0, "peak_rss_GiB": 9.5})
    assert whole["one_pass_s"] == 17000.0 and not whole["peak_is_lower_bound"]


def test_ratios_compare_the_same_tomogram():
    row = peers.compare((128, 256, 256), 0.031, {"wall_s": 20.0, "peak_rss_GiB": 0.5},
                        {"one_pass_s": 400.0, "default_8_passes_s": 3200.0, "peak_rss_GiB": 4.0})
    assert row["throughput_ratio_one_pass"] == 20.0 and row["throughput_ratio_peer_default"] == 160.0
    assert row["memory_ratio"] == 0.125 and row["ours_peak_minus_input_GiB"] == pytest.approx(0.469)
    assert row["ours"]["voxels_per_s"] == round(128 * 256 * 256 / 20) and row["peer"]["voxels_per_s_one_pass"] == round(128 * 256 * 256 / 400)


def test_the_section_runs_ours_reads_the_peers_report_and_renders_the_ratios(tmp_path, monkeypatch):
    tomogram = write_large_tomogram(tmp_path / "tiny.mrc", (8, 64, 64))
    model = random_membrane_model(tmp_path / "model")
    report = {"shape_zyx": [8, 64, 64], "complete": True, "windows_run": 1, "windows_expected": 1, "s_per_window_median": 2.5,
              "s_before_first_window": 1.0, "s_after_last_window": 0.5, "wall_s": 4.0}
    stand_in = tmp_path / "peer-python"  # prints what the peer script prints, after a line of its own logging
    stand_in.write_text(f"#!/bin/sh\necho 'segmenting...'\nsleep 0.5\necho '{json.dumps(report)}'\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(peers, "install_peer", lambda folder: stand_in)
    result = peers.run_peer_bench(tmp_path / "work", [tomogram], model, {})
    (row,) = result["rows"]
    assert row["tomogram"] == "tiny.mrc" and row["shape_zyx"] == [8, 64, 64]
    assert (tmp_path / "work" / "ours-tiny" / "tiny_membrane_mask.mrc").is_file()  # ours really segmented it
    assert row["peer"]["windows_run"] == 1 and row["peer"]["complete"] and row["peer"]["one_pass_s"] > 0
    assert row["throughput_ratio_one_pass"] == round(row["peer"]["one_pass_s"] / row["ours"]["wall_s"], 1)
    text = "\n".join(_peers(result))
    assert "| tiny.mrc (64 x 64 x 8," in text and "1 / 1" in text and "(extrapolated)" not in text


def test_a_peer_that_prints_no_report_is_an_error_naming_its_log(tmp_path):
    silent = tmp_path / "peer-python"
    silent.write_text("#!/bin/sh\necho 'ImportError: no module'\n")
    silent.chmod(silent.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(RuntimeError, match="printed no result; see .*peer.log"):
        peers.run_peer(silent, tmp_path / "t.mrc", tmp_path / "work")


def test_a_childs_peak_memory_is_its_own_not_the_benchmarks(tmp_path):
    """Linux carries a parent's peak resident memory into a forked child: measured directly, every child of a
    benchmark that once held 0.4 GiB would report at least 0.4 GiB."""
    held = np.ones(50_000_000)  # 0.37 GiB resident in this process
    small = child_usage([sys.executable, "-c", "pass"])
    assert small["peak_rss_GiB"] < 0.1
    large = child_usage([sys.executable, "-c", "import numpy; a = numpy.ones(25_000_000); print('done')"], tmp_path / "log")
    assert 0.18 < large["peak_rss_GiB"] < 0.35  # its own 0.19 GiB array and the interpreter, not the 0.37 held here
    assert (tmp_path / "log").read_text().strip() == "done"
    with pytest.raises(RuntimeError, match="failed with status 3"):
        child_usage([sys.executable, "-c", "raise SystemExit(3)"])
    del held
