"""The benchmark's own arithmetic on hand-made cases, and a smoke run of every section."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryodiffseg.benchmark.accuracy import AccuracyBenchConfig, _means, membrane_targets, picking_by_threshold, slab_for
from cryodiffseg.benchmark.baselines import threshold_baseline
from cryodiffseg.benchmark.plan import SECTIONS
from cryodiffseg.benchmark.report import TITLES, render_report
from cryodiffseg.cli import main
from cryodiffseg.tomoio import read_tomogram, write_mrc


def test_slab_is_about_two_percent_in_the_middle_with_a_minimum():
    config = AccuracyBenchConfig(variants=[])
    assert slab_for(128, config) == [62, 63, 64, 65]  # 2% of 128 is 2.6 -> the minimum of 4
    assert slab_for(500, config) == list(range(245, 255))  # 10 slices = 2%
    assert len(slab_for(1000, config)) == 20


def test_means_over_tomograms_per_part():
    per_tomogram = {
        "a": {"membrane": {"dice": 0.5, "per_slice_mean_dice": 0.4, "iou": 0.3}, "particles": {"precision": 1.0, "recall": 0.5, "f1": 0.667}},
        "b": {"membrane": {"dice": 0.7, "per_slice_mean_dice": 0.6, "iou": 0.5}},
    }
    means = _means(per_tomogram)
    assert means["dice"] == 0.6 and means["per_slice_mean_dice"] == 0.5 and means["iou"] == 0.4
    assert means["pick_f1"] == 0.667 and means["pick_recall"] == 0.5  # only tomograms with particles count
    assert _means({}) == {}


def test_the_default_row_is_checked_against_its_data_sets_targets():
    rows = [
        {"kind": "unsupervised", "pseudolabel_membrane": {"dice": 0.45}, "mean": {"dice": 0.56}, "dice_ratio_to_supervised": 0.79},
        {"kind": "unsupervised", "pseudolabel_membrane": {"dice": 0.9}, "mean": {"dice": 0.9}, "dice_ratio_to_supervised": 1.0},
        {"kind": "classical", "mean": {"dice": 0.3}},
        {"kind": "classical", "mean": {"dice": 0.35}},
    ]
    checks = {c["measure"]: (c["value"], c["met"]) for c in membrane_targets("simulated (polnet)", rows)}
    assert checks["pseudo-label Dice on the slab"] == (0.45, True)
    assert checks["membrane Dice, all tomograms"] == (0.56, True)
    assert checks["margin over the best thresholding baseline"] == (0.21, True)  # against the better baseline
    assert checks["share of the supervised U-Net's Dice"] == (0.79, False)
    assert len(membrane_targets("generated", rows)) == 3  # no supervised share asked there
    assert membrane_targets("elsewhere", rows) == []


def test_picks_cut_at_higher_score_thresholds(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("x,y,z\n10,10,10\n50,50,50\n")
    picks = tmp_path / "picks.csv"  # one true pick at 0.95, one at 0.65, a false one at 0.75
    picks.write_text("x,y,z,score\n10,11,10,0.95\n30,30,30,0.75\n50,50,51,0.65\n")
    cut = picking_by_threshold(picks, truth, radius=3)
    assert cut["0.5"] == {"precision": 0.667, "recall": 1.0, "f1": 0.8}
    assert cut["0.7"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert cut["0.8"] == {"precision": 1.0, "recall": 0.5, "f1": 0.667}
    assert cut["0.9"] == cut["0.8"]
    empty = tmp_path / "none.csv"
    empty.write_text("x,y,z,score\n")
    assert picking_by_threshold(empty, truth, radius=3)["0.5"]["recall"] == 0.0
    means = _means({"a": {"particles": {"precision": 1, "recall": 1, "f1": 1, "by_threshold": {"0.5": {"f1": 0.2}, "0.9": {"f1": 0.6}}}},
                    "b": {"particles": {"precision": 1, "recall": 1, "f1": 1, "by_threshold": {"0.5": {"f1": 0.4}, "0.9": {"f1": 1.0}}}}})
    assert means["pick_f1_by_threshold"] == {"0.5": 0.3, "0.9": 0.8}


def test_threshold_baselines_find_a_dark_band_and_drop_specks(tmp_path):
    volume = np.zeros((6, 64, 64), dtype=np.float32)
    volume[:, 30:34, :] = -5.0  # a dark membrane-like band
    volume[:, 5, 5] = -5.0  # a dark speck: a component too small to keep
    volume += np.random.default_rng(0).normal(0, 0.1, volume.shape).astype(np.float32)
    path = write_mrc(tmp_path / "t.mrc", volume, 10.0)
    for method in ("otsu", "adaptive"):
        mask = np.asarray(read_tomogram(threshold_baseline(path, tmp_path / f"{method}.mrc", method, 50), check_values=False).data)
        band = mask[:, 31:33, 8:56]
        assert band.mean() > 0.9, method
        assert mask[:, 5, 5].sum() == 0 and mask[:, :20, 20:].sum() == 0, method


def test_report_renders_each_stored_section_with_its_command(tmp_path):
    machine = {"cpu": "cpu", "cores": 2, "torch_threads": 2, "memory_GiB": 8, "gpu": None, "date": "d", "versions": {"torch": "x"}}
    result = {"backbone": "b", "random_weights": True, "tile_px": 128, "layers": 7, "grids": [32, 16], "heads": [2, 4],
              "num_samples": 4, "paper_iterations": 2000, "tiles": 3, "direct_s_median": 0.5, "paper_s_median": 100.0,
              "speed_ratio_median": 200.0, "agreement_mean": 0.93, "agreement_min": 0.9,
              "per_tile": [{"eigenvalues": [1.0] + [0.05] * 12, "agreement": 0.25, "paper_rayleigh_fraction": 0.8, "paper_s": 100.0, "direct_s": 0.5}],
              "reference": [{"attention": "regions", "grid": 32, "eigenvalues": [1.0, 0.97] + [0.8] * 10 + [0.24],
                             "agreement": 0.91, "paper_rayleigh_fraction": 0.98, "paper_s": 30.0, "direct_s": 0.1}],
              "labels": {"slice": 12, "mask_dice_between_solvers": 0.61,
                         "rows": {"direct": {"membrane_dice": 0.2, "points": 7, "point_precision": 0.5, "seconds": 20.0},
                                  "paper": {"membrane_dice": 0.25, "points": 9, "point_precision": 0.333, "seconds": 900.0}}}}
    (tmp_path / "spectral.json").write_text(json.dumps({"command": "cryodiffseg bench --sections spectral", "smoke": False, "machine": machine, "result": result}))
    text = render_report(tmp_path)
    assert TITLES["spectral"] in text and "`cryodiffseg bench --sections spectral`" in text
    assert "RANDOM weights" in text and "| 200 | >= 20 |" in text and "0.93" in text
    assert "| regions: tokens attend to their own region of a 12-region partition, 32 x 32 | 1, 0.97, 0.8, 0.24 | 0.91 | 0.98 | 300 |" in text
    assert "| backbone `b`, first tile | 1, 0.05, 0.05, 0.05 | 0.25 | 0.8 | 200 |" in text
    assert "| paper | 0.25 | 9 | 0.333 | 900 |" in text and "masks on that slice: 0.61." in text
    assert TITLES["accuracy"] not in text  # nothing stored, nothing shown


@pytest.mark.timeout(1500)
def test_smoke_run_writes_every_section(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    assert main(["-q", "bench", "--smoke", "--results", str(tmp_path / "results"), "--report", str(report),
                 "--work", str(tmp_path / "work"), "--data", str(tmp_path / "no-shared-data")]) == 0
    text = report.read_text()
    for section in SECTIONS:
        assert TITLES[section] in text, section
        assert json.loads((tmp_path / "results" / f"{section}.json").read_text())["smoke"] is True
    assert text.count("Smoke run") == len(SECTIONS)
    assert "Data absent" in text  # the real microtubule patches are not part of a clean clone
    stages = json.loads((tmp_path / "results" / "stages.json").read_text())["result"]["rows"][0]
    assert stages["tiles_per_512_patch"] == 30.25  # 128-px tiles overlapping by 32 px: stride 96 px
    assert stages["total_s_per_512_patch"] == pytest.approx(stages["total_s_per_tile"] * 30.25, abs=0.03)
    assert "s per 512 x 512 patch" in text
    default = json.loads((tmp_path / "results" / "stages.json").read_text())["result"]["default"]
    assert [row["slab_slices"] for row in default["rows"]] == [4] and default["rows"][0]["wall_s"] > 0
    assert "The default pseudo-label stage (membranes from sheet evidence" in text
    assert "with the same picks cut at fixed score thresholds instead of each picker's calibrated one" in text
    assert "against its targets on this data set" in text and "Picks as a user judges them" in text
    presets = json.loads((tmp_path / "results" / "presets.json").read_text())["result"]["datasets"][0]["rows"]
    assert [row["signs"] for row in presets] == ["as solved", "as solved", "as solved", "flipped", "random"]  # no --with-paper
    assert presets[0]["eigenmap_slices_computed"] is None  # the default runs no model
    assert [row["eigenmap_slices_computed"] for row in presets[2:5]] == [4, 0, 0]  # re-signed maps come from the cache
    assert TITLES["presets"] in text and "| default (sheet and blob evidence, no model) |" in text
    slabs = json.loads((tmp_path / "results" / "slabs.json").read_text())["result"]["datasets"][0]
    assert [row["choice"] for row in slabs["rows"]] == ["automatic seed 0", "random 1", "random 2"]
    assert slabs["summary"]["dice"]["random"] == 2 and "random choices below the automatic median" in text
    accuracy = json.loads((tmp_path / "results" / "accuracy.json").read_text())["result"]
    assert [d["dataset"] for d in accuracy["datasets"]] == ["generated"]
    rows = accuracy["datasets"][0]["rows"]
    methods = [row["method"] for row in rows]
    assert methods[0].startswith("default") and rows[0]["membranes"] == "sheets" and rows[0]["particles"] == "blobs"
    assert any("random weights" in m for m in methods) and any("supervised" in m for m in methods)
    assert "global Otsu threshold" in methods and "local adaptive threshold" in methods
    assert any(m.startswith("blob detector") for m in methods)
    targets = {t["measure"] for t in accuracy["datasets"][0]["targets"]}
    assert "membrane Dice, all tomograms" in targets and "pick F1 from pseudo-points" in targets


def test_preset_rows_run_the_preset_with_the_benchmarks_backbone_and_an_offline_splitter():
    from cryodiffseg.benchmark.presets import preset_rows, row_config
    from cryodiffseg.spectral import PaperSolverConfig

    rows = {row.label: row for row in preset_rows(with_paper_solver=True)}
    direct = row_config(rows["paper preset with the direct solver (reference layer weights 0.9)"], "3-6", "compact", PaperSolverConfig(iterations=7))
    assert (direct.preset, direct.solver, direct.tiling, direct.direct.reuse_probability) == ("paper", "direct", "quadrisect", 0.9)
    assert direct.backbone.source == "compact" and direct.masks.splitter == "auto" and direct.paper.iterations == 7
    assert direct.points.dedup_mode == "first" and direct.points.integer_coordinates and direct.membranes == "attention"
    default = row_config(rows["default (sheet and blob evidence, no model)"], "3-6", "compact", PaperSolverConfig())
    assert (default.membranes, default.particles, default.solver) == ("sheets", "blobs", "direct")


def test_resigned_cache_negates_every_map_or_draws_each_sign(tmp_path):
    from cryodiffseg.benchmark.presets import _resigned_cache

    maps = np.arange(1, 2 * 3 * 4 * 4 + 1, dtype=np.float32).reshape(2, 3, 4, 4)
    (tmp_path / "cache" / "eigenmaps" / "key").mkdir(parents=True)
    np.save(tmp_path / "cache" / "eigenmaps" / "key" / "z0004-abc.npy", maps)
    _resigned_cache(tmp_path / "cache", tmp_path / "flipped", "flipped")
    np.testing.assert_array_equal(np.load(tmp_path / "flipped" / "eigenmaps" / "key" / "z0004-abc.npy"), -maps)
    _resigned_cache(tmp_path / "cache", tmp_path / "random", "random")
    signs = np.load(tmp_path / "random" / "eigenmaps" / "key" / "z0004-abc.npy") / maps
    assert set(np.unique(signs)) <= {-1.0, 1.0} and np.all(signs == signs[:, :, :1, :1])  # one sign per map
    np.testing.assert_array_equal(np.load(tmp_path / "cache" / "eigenmaps" / "key" / "z0004-abc.npy"), maps)  # source kept


def test_manual_style_slabs_are_seeded_contiguous_and_stay_in_the_middle_of_their_tomogram():
    from cryodiffseg.benchmark.slabs import manual_style_slabs

    slabs = manual_style_slabs([100, 40], 4, 50, seed=3)
    assert slabs == manual_style_slabs([100, 40], 4, 50, seed=3) and slabs != manual_style_slabs([100, 40], 4, 50, seed=4)
    assert {index for index, _, _ in slabs} == {0, 1}
    for index, first, last in slabs:
        depth = (100, 40)[index]
        assert last - first == 3 and first >= round(0.1 * depth) and last < depth - round(0.1 * depth)


def test_the_slab_summary_ranks_the_automatic_median_among_the_random_choices():
    from cryodiffseg.benchmark.slabs import summarise

    rows = [{"choice": f"automatic seed {s}", "dice": d, "pick_f1": None} for s, d in enumerate((0.6, 0.4, 0.65))] + [
        {"choice": f"random {k}", "dice": d, "pick_f1": None} for k, d in enumerate((0.2, 0.5, 0.7, 0.55, 0.61))]
    summary = summarise(rows)
    assert summary == {"dice": {"automatic": 0.6, "automatic_worst": 0.4, "automatic_seeds": 3, "random_median": 0.55,
                                "random_worst": 0.2, "random_best": 0.7, "random_below_automatic": 3, "random": 5}}


def test_an_interrupted_slab_benchmark_resumes_after_its_last_finished_choice(tmp_path, monkeypatch):
    from cryodiffseg.benchmark import slabs
    from cryodiffseg.benchmark.datasets import generated_dataset

    dataset = generated_dataset(tmp_path / "data", (24, 48, 48), 2, seed=1)
    trained = []

    def train_and_apply(dataset, labels, folder, radius, config):
        trained.append(folder.name)
        if len(trained) == 2:
            raise KeyboardInterrupt  # the run stops during its second choice
        return {"tomograms": {"gen1": {"membrane": {"dice": 0.5, "per_slice_mean_dice": 0.5, "iou": 0.3}}}}

    labelled = []
    monkeypatch.setattr(slabs, "run_pseudolabel", lambda tomogram, out, config: labelled.append((Path(tomogram).parent.name, config.slabs)))
    monkeypatch.setattr(slabs, "_train_and_apply", train_and_apply)
    config = AccuracyBenchConfig(variants=[])
    with pytest.raises(KeyboardInterrupt):
        slabs.run_slab_bench(dataset, tmp_path / "work", config, choices=2, finished=tmp_path / "rows")
    shutil.rmtree(tmp_path / "work", ignore_errors=True)  # scratch files may be gone (a new machine): the kept rows are enough
    result = slabs.run_slab_bench(dataset, tmp_path / "work", config, choices=2, finished=tmp_path / "rows")
    assert trained == ["automatic-seed-0", "random-1", "random-1", "random-2"]  # the finished choice is not redone
    assert [row["dice"] for row in result["rows"]] == [0.5, 0.5, 0.5]
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["automatic-seed-0.json", "random-1.json", "random-2.json"]
    # the default automatic budget (2 slabs of 2 slices in place of one 4-slice slab), pseudo-labelled where it lies
    automatic = result["rows"][0]
    assert sum(len(spec.split(",")) for spec in automatic["slab"].split("; ")) == 2
    assert [name for name, _ in labelled[: len(automatic["tomogram"].split(", "))]] == automatic["tomogram"].split(", ")
