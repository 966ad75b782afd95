"""The stage commands chained as a user runs them: train -> segment -> pick -> evaluate."""

import csv
import json

import mrcfile
import pytest
from pseudolabel_folders import chain_phantom

from cryodiffseg.cli import main


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data, folder = chain_phantom(root)
    assert main(["train", str(folder), "--out", str(root / "model"), "--iterations", "15", "--crop-size", "64",
                 "--picker-iterations", "15", "--device", "cpu"]) == 0
    return root, data


def test_train_writes_both_models(chain):
    root, _ = chain
    record = json.loads((root / "model" / "training.json").read_text())
    assert set(record["models"]) == {"membranes", "particles"}
    assert json.loads((root / "model" / "membranes" / "model.json").read_text())["kind"] == "membrane-unet"
    assert (root / "model" / "particles" / "best" / "model.safetensors").is_file()


def test_segment_pick_evaluate(chain, capsys):
    root, data = chain
    assert main(["segment", str(data["tomogram"]), "--model", str(root / "model"), "--out", str(root / "seg"), "--device", "cpu"]) == 0
    mask_path = root / "seg" / "tomogram_membrane_mask.mrc"
    with mrcfile.open(mask_path) as mask, mrcfile.open(data["tomogram"]) as tomo:
        assert mask.data.shape == tomo.data.shape and mask.voxel_size.x == pytest.approx(10.0)
    assert (root / "seg" / "tomogram_membrane_probability.mrc").is_file()

    assert main(["pick", str(data["tomogram"]), "--model", str(root / "model"), "--out", str(root / "picks"),
                 "--threshold", "0.05", "--device", "cpu"]) == 0
    with open(root / "picks" / "tomogram_particles.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert 0 <= float(row["x"]) < 96 and 0 <= float(row["y"]) < 96 and 0 <= float(row["z"]) < 40
        assert 0 <= float(row["score"]) <= 1
    star = (root / "picks" / "tomogram_particles.star").read_text()
    assert "data_particles" in star and "_rlnCoordinateZ" in star
    assert len([line for line in star.splitlines() if line.startswith("tomogram.mrc")]) == len(rows)

    capsys.readouterr()
    assert main(["evaluate", "--mask", str(mask_path), "--truth-mask", str(data["membrane"]),
                 "--points", str(root / "picks" / "tomogram_particles.csv"), "--truth-points", str(data["particles"]),
                 "--radius", "12.5", "--json", str(root / "scores.json")]) == 0
    printed = capsys.readouterr().out
    assert "dice" in printed and "f1" in printed
    scores = json.loads((root / "scores.json").read_text())
    assert 0 <= scores["mask"]["dice"] <= 1 and 0 <= scores["points"]["f1"] <= 1
    assert main(["evaluate", "--mask", str(mask_path), "--truth-mask", str(data["membrane"]), "--json", "-"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["mask"]["dice"] == scores["mask"]["dice"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["segment", "{tomo}", "--model", "{root}/nothing", "--out", "{root}/x"], "not found"),
        (["pick", "{tomo}", "--model", "{root}/model/membranes", "--out", "{root}/x"], "particle-picker"),
        (["train", "{root}/pl", "--out", "{root}/m2", "--targets", "ribosomes"], "--targets"),
        (["evaluate"], "Give --mask"),
        (["evaluate", "--points", "{root}/picks/none.csv", "--truth-points", "{root}/data/particles.csv"], "--radius"),
        (["segment", "{root}/data/particles.csv", "--model", "{root}/model", "--out", "{root}/x"], "Unsupported"),
    ],
)
def test_stage_errors_are_one_line_and_exit_2(chain, capsys, argv, message):
    root, data = chain
    argv = [a.format(root=root, tomo=data["tomogram"]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (root / "x").exists() or not any((root / "x").glob("*.mrc"))


@pytest.mark.parametrize("command", [["segment", "{tomo}", "--model", "{root}/model"], ["pick", "{tomo}", "--model", "{root}/model"],
                                     ["train", "{root}/pl"], ["synth"], ["pseudolabel", "{tomo}", "--slabs", "20-23"]])
def test_an_out_that_names_a_file_or_sits_under_one_is_refused_before_any_work(chain, capsys, command):
    root, data = chain
    blocker = root / "a-file"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "sub"):
        argv = [a.format(root=root, tomo=data["tomogram"]) for a in command] + ["--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and str(blocker) in err, err
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("command", [["segment", "{tomo}", "--model", "{root}/model", "--device", "cpu"],
                                     ["pick", "{tomo}", "--model", "{root}/model", "--heatmap", "--no-average", "--device", "cpu"]])
def test_a_full_disk_stops_memory_mapped_writes_with_one_line_and_no_leftovers(chain, capsys, monkeypatch, tmp_path, command):
    import errno
    import os

    root, data = chain

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "out"
    assert main([a.format(root=root, tomo=data["tomogram"]) for a in command] + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and str(out) in err, err
    assert not out.exists() or not [p.name for p in out.rglob("*") if p.is_file()]  # no output, no hidden temporary file
