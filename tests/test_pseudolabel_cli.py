"""End to end: `cryodiffseg pseudolabel` on a generated tomogram: the default (image evidence, no model), and the
attention canvas with a tiny saved backbone."""

import csv
import json
import os
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryodiffseg.cli import main
from cryodiffseg.pseudolabel import pipeline
from cryodiffseg.synthetic import PhantomConfig, generate_phantom, write_phantom

from tiny_models import save_as_original_checkpoint


@pytest.fixture(scope="module")
def tomogram(tmp_path_factory):
    phantom = generate_phantom(PhantomConfig(shape=(12, 80, 96), voxel_size_A=10.0, seed=1))
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom"))["tomogram"]


@pytest.fixture(scope="module")
def first_run(tomogram, tiny_sd, tmp_path_factory):
    out = tmp_path_factory.mktemp("pseudolabels")
    code = main(["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd), "--num-samples", "2",
                 "--particles", "attention"])
    return code, out


def test_every_output_with_the_tomograms_geometry(first_run, tomogram):
    code, out = first_run
    assert code == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["labelled_slices"] == [3, 4, 5, 8]
    assert manifest["splitter"] == "watershed"  # no cellpose weights on a test machine
    with mrcfile.open(tomogram) as src, mrcfile.open(out / manifest["outputs"]["membrane_mask"]) as mask:
        assert mask.data.shape == src.data.shape == (12, 80, 96)
        assert mask.voxel_size.x == pytest.approx(10.0)
        assert mask.data.dtype == np.int8 and set(np.unique(mask.data)) <= {0, 1}
        unlabelled = [z for z in range(12) if z not in (3, 4, 5, 8)]
        assert mask.data[unlabelled].max() == 0
        assert all(mask.data[z].any() for z in (3, 4, 5, 8))
    with open(out / manifest["outputs"]["points"]) as handle:
        rows = list(csv.DictReader(handle))
    assert manifest["points"] == len(rows)
    for row in rows:
        assert 0 <= float(row["x"]) < 96 and 0 <= float(row["y"]) < 80 and int(row["z"]) in (3, 4, 5, 8)
    pngs = sorted((out / "qc").glob("*.png"))
    assert [p.name for p in pngs] == ["tomogram_slab1_z3-5.png", "tomogram_slab2_z8-8.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    maps = _maps(out, 4)
    assert maps.shape[1:] == (12, 32, 32)  # 12 maps on the finest (32 x 32) attention grid per tile
    canvases = np.load(out / "cache" / "tomogram_canvases.npz")
    assert canvases["corrected"].shape == (4, 80, 96)
    assert not list(out.rglob(".*"))  # no temporary files left behind


def _maps(out, z):
    (path,) = (out / "cache" / "eigenmaps").glob(f"*/z{z:04d}-*.npy")
    return np.load(path)


def test_rethresholding_reuses_cached_attention(first_run, tomogram, tiny_sd, caplog):
    code, out = first_run
    before = _maps(out, 3)
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--particles", "attention", "--threshold-offset", "8"]) == 0
    assert "read from the cache" in caplog.text
    np.testing.assert_array_equal(_maps(out, 3), before)
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["config"]["masks"]["threshold_offset"] == 8.0
    assert manifest["features"]["computed_slices"] == 0


def test_changed_feature_settings_recompute_beside_the_old_cache(first_run, tomogram, tiny_sd):
    code, out = first_run
    assert main(["pseudolabel", str(tomogram), "--slabs", "4", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "1", "--particles", "attention"]) == 0
    assert json.loads((out / "pseudolabels.json").read_text())["features"]["computed_slices"] == 1
    assert len(list((out / "cache" / "eigenmaps").glob("*/z0004-*.npy"))) == 2


def _missing_canvases(monkeypatch, tiles_of):
    """Canvases as the pipeline builds them, less those of the tiles ``tiles_of(z)`` names (the eigen-maps of
    such a tile were all too fragmented for a canvas)."""
    build = pipeline._attention_canvases

    def without(*args, **kwargs):
        attention = build(*args, **kwargs)
        for z, tiles in attention.corrected.items():
            for t in tiles_of(z):
                tiles[t] = None
        return attention

    monkeypatch.setattr(pipeline, "_attention_canvases", without)


def test_a_slice_missing_a_canvas_is_left_unlabelled_not_taken_for_background(first_run, tomogram, tiny_sd, tmp_path, monkeypatch, caplog):
    """As the reference leaves a slice with a missing patch: no mask at all, and none of its canvas points."""
    out = tmp_path / "out"
    shutil.copytree(first_run[1] / "cache", out / "cache")  # the eigen-maps of the first run: no attention again
    _missing_canvases(monkeypatch, lambda z: [0] if z == 4 else [])
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--particles", "attention"]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["labelled_slices"] == [3, 5, 8] and manifest["unlabelled_slices"] == {"4": [0]}
    assert "4" not in manifest["per_slice"] and "1 slice(s) left unlabelled" in caplog.text
    with mrcfile.open(out / manifest["outputs"]["membrane_mask"]) as mask:
        assert not mask.data[4].any() and all(mask.data[z].any() for z in (3, 5, 8))
    with open(out / manifest["outputs"]["points"]) as handle:
        assert all(int(row["z"]) != 4 for row in csv.DictReader(handle))


def test_no_slice_with_every_canvas_stops_with_one_line_and_no_output(first_run, tomogram, tiny_sd, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    shutil.copytree(first_run[1] / "cache", out / "cache")
    _missing_canvases(monkeypatch, lambda z: [0])
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--membranes", "attention"]) == 2
    err = capsys.readouterr().err
    assert "No slice of 3-5,8 got a canvas for every tile" in err and len(err.strip().splitlines()) == 1
    assert not (out / "pseudolabels.json").exists() and not list(out.glob("*.mrc"))


def test_the_default_sources_need_no_canvas_and_label_every_slice(first_run, tomogram, tiny_sd, tmp_path, monkeypatch):
    """Sheets weighted by the canvas take a missing tile as neutral: the slice stays labelled."""
    out = tmp_path / "out"
    shutil.copytree(first_run[1] / "cache", out / "cache")
    _missing_canvases(monkeypatch, lambda z: [0])
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--membranes", "both"]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["labelled_slices"] == [3, 4, 5, 8] and manifest["unlabelled_slices"] == {}


def test_the_paper_preset_writes_points_truncated_to_whole_pixels(first_run, tomogram, tiny_sd, tmp_path):
    out = tmp_path / "out"
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-5", "--out", str(out), "--preset", "paper", "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--solver", "direct", "--splitter", "watershed", "--tile-jpeg-quality", "0"]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["config"]["points"]["integer_coordinates"] is True and manifest["points"] > 0
    with open(out / manifest["outputs"]["points"]) as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(row[axis]).is_integer() for row in rows for axis in "xyz")


def test_jpeg_tiles_give_their_own_eigenmaps_beside_the_lossless_ones(first_run, tomogram, tiny_sd, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1] / "cache", out / "cache")
    before = set((out / "cache" / "eigenmaps").glob("*/z0004-*.npy"))
    common = ["pseudolabel", str(tomogram), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd), "--num-samples", "2", "--particles", "attention"]
    assert main([*common, "--tile-jpeg-quality", "95"]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["config"]["tile_jpeg_quality"] == 95 and manifest["features"]["computed_slices"] == 4
    (jpeg,) = set((out / "cache" / "eigenmaps").glob("*/z0004-*.npy")) - before
    assert all(not np.allclose(np.load(lossless), np.load(jpeg)) for lossless in before)


def test_single_checkpoint_with_its_configs_gives_the_folders_eigenmaps(tomogram, tiny_sd, tmp_path):
    checkpoint = save_as_original_checkpoint(tiny_sd, tmp_path / "tiny-sd.safetensors")
    common = ["pseudolabel", str(tomogram), "--slabs", "4", "--num-samples", "1", "--membranes", "attention"]
    assert main([*common, "--out", str(tmp_path / "folder"), "--backbone", str(tiny_sd)]) == 0
    assert main([*common, "--out", str(tmp_path / "file"), "--backbone", str(checkpoint), "--backbone-config", str(tiny_sd)]) == 0
    np.testing.assert_allclose(_maps(tmp_path / "file", 4), _maps(tmp_path / "folder", 4), atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--slabs", "10-20"], "has 12 slices"),
        (["--slabs", "1", "--particles", "attention", "--backbone", "CompVis/stable-diffusion-v1-4"], "--backbone DIR"),
        (["--slabs", "1", "--particles", "attention", "--tiling", "native", "--tile-overlap", "64", "--backbone", "missing/dir/x"], "neither an existing"),
        (["--slabs", "1", "--sheet-low", "9"], "low <= high"),
    ],
)
def test_bad_input_exits_nonzero_with_one_message_and_no_output(tomogram, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["pseudolabel", str(tomogram), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".json"]


@pytest.mark.parametrize("args, rule", [(["--voxel-size=-3"], "> 0"), (["--blob-threshold", "0"], "> 0"), (["--sheet-high", "nan"], "> 0"),
                                        (["--tile-jpeg-quality", "101"], ">= 0 and <= 100")])
def test_numbers_out_of_range_stop_at_parsing_with_one_line_and_no_output(tomogram, tmp_path, capsys, args, rule):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["pseudolabel", str(tomogram), "--out", str(out), "--slabs", "1", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"is not allowed: the value must be {rule}" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_choice_is_an_argument_error(tomogram, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pseudolabel", str(tomogram), "--out", str(tmp_path), "--slabs", "1", "--solver", "magic"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_another_tomogram_under_the_same_name_never_reads_the_cached_maps(first_run, tomogram, tiny_sd, tmp_path):
    code, out = first_run
    other = generate_phantom(PhantomConfig(shape=(12, 80, 96), voxel_size_A=10.0, seed=9))  # same name, shape, voxel
    path = write_phantom(other, tmp_path / "other")["tomogram"]
    assert path.name == tomogram.name
    assert main(["pseudolabel", str(path), "--slabs", "3-5,8", "--out", str(out), "--backbone", str(tiny_sd),
                 "--num-samples", "2", "--particles", "attention"]) == 0
    assert json.loads((out / "pseudolabels.json").read_text())["features"]["computed_slices"] == 4


def test_auto_backbone_offline_without_stable_diffusion_runs_the_shipped_model(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("offline, the hub must not be contacted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    phantom = generate_phantom(PhantomConfig(shape=(8, 64, 64), seed=3))
    tomogram = write_phantom(phantom, tmp_path / "data")["tomogram"]
    empty_cache = tmp_path / "hub"
    empty_cache.mkdir()
    env = {**os.environ, "HF_HUB_CACHE": str(empty_cache), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "cryodiffseg", "pseudolabel", str(tomogram), "--slabs", "3-4",
                          "--particles", "attention", "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "out" / "pseudolabels.json").read_text())
    assert manifest["backbone"]["source"] == "compact" and "not in the local Hugging Face cache" in manifest["backbone"]["reason"]
    assert manifest["config"]["backbone"]["source"] == "compact"
    assert "not in the local Hugging Face cache" in run.stderr  # the log says which model ran and why


def test_auto_backbone_takes_stable_diffusion_from_the_local_cache(tmp_path, tiny_sd):
    """With the paper's model in the hub cache (a tiny stand-in under its hub id), auto loads it from there."""
    from tiny_models import install_in_hub_cache

    cache = tmp_path / "hub"
    install_in_hub_cache(tiny_sd, cache, "CompVis/stable-diffusion-v1-4")
    phantom = generate_phantom(PhantomConfig(shape=(8, 64, 64), seed=3))
    tomogram = write_phantom(phantom, tmp_path / "data")["tomogram"]
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "cryodiffseg", "pseudolabel", str(tomogram), "--slabs", "3",
                          "--particles", "attention", "--num-samples", "1", "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "out" / "pseudolabels.json").read_text())
    assert manifest["backbone"]["source"] == "CompVis/stable-diffusion-v1-4"
    assert "is in the local Hugging Face cache" in manifest["backbone"]["reason"]
    assert manifest["features"]["tile_size"] == 64  # the tiny stand-in's tiles, so it really ran


def test_a_hub_id_offline_says_what_to_do(tmp_path, capsys):
    phantom = generate_phantom(PhantomConfig(shape=(8, 64, 64), seed=3))
    tomogram = write_phantom(phantom, tmp_path / "data")["tomogram"]
    assert main(["pseudolabel", str(tomogram), "--slabs", "3-4", "--out", str(tmp_path / "out"), "--backbone", "CompVis/stable-diffusion-v1-4",
                 "--membranes", "both"]) == 2
    error = capsys.readouterr().err
    assert "CompVis/stable-diffusion-v1-4" in error and "--backbone compact" in error and "Traceback" not in error
    assert not (tmp_path / "out" / "pseudolabels.json").exists()


def test_shipped_backbone_runs_end_to_end(tmp_path):
    phantom = generate_phantom(PhantomConfig(shape=(16, 160, 144), seed=3))
    tomogram = write_phantom(phantom, tmp_path / "data")["tomogram"]
    assert main(["pseudolabel", str(tomogram), "--slabs", "7-8", "--backbone", "compact", "--particles", "both", "--out", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "pseudolabels.json").read_text())
    assert manifest["config"]["backbone"]["source"] == "compact"
    assert manifest["features"]["tile_size"] == 128
    with mrcfile.open(tmp_path / "out" / manifest["outputs"]["membrane_mask"]) as mask:
        assert mask.data.shape == (16, 160, 144) and mask.data[7:9].any() and not mask.data[:7].any()
    assert (tmp_path / "out" / "qc" / "tomogram_slab1_z7-8.png").is_file()


def test_the_default_runs_no_model_and_writes_held_out_points(tmp_path, caplog):
    """Membranes from sheets and particles from blobs need no backbone: none is loaded, nothing is cached."""
    phantom = generate_phantom(PhantomConfig(shape=(48, 128, 128), seed=1))
    paths = write_phantom(phantom, tmp_path / "data")
    out = tmp_path / "out"
    assert main(["pseudolabel", str(paths["tomogram"]), "--slabs", "22-25", "--out", str(out), "--backbone", "missing/model"]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["backbone"]["source"] is None and manifest["features"] is None and manifest["splitter"] is None
    assert manifest["membranes"]["source"] == "sheets" and manifest["particles"]["source"] == "blobs"
    assert not (out / "cache").exists() and "Backbone" not in caplog.text
    calibration = out / manifest["outputs"]["calibration_points"]
    assert calibration.is_file() and manifest["calibration_slices"]
    assert not set(manifest["calibration_slices"]) & set(range(22 - 12, 26 + 12))  # beyond a particle radius of the slab
    assert (out / "qc" / "tomogram_slab1_z22-25.png").is_file()


def test_default_membrane_pseudo_labels_beat_a_global_threshold_of_the_same_tomogram(tmp_path):
    """The main job's kind of tomogram: the default pseudo-mask against the truth, beside global Otsu."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from cryodiffseg.synthetic import scaled_config

    phantom = generate_phantom(scaled_config((64, 192, 192), seed=5, snr=0.3))
    paths = write_phantom(phantom, tmp_path / "data")
    assert main(["pseudolabel", str(paths["tomogram"]), "--slabs", "30-33", "--out", str(tmp_path / "out")]) == 0
    with mrcfile.open(tmp_path / "out" / "tomogram_membrane_pseudomask.mrc") as mask:
        labelled = mask.data[30:34] > 0
    truth = phantom.membrane[30:34] > 0
    smoothed = ndi.gaussian_filter(phantom.tomogram, 1.5)
    otsu = smoothed[30:34] < threshold_otsu(smoothed)

    def dice(a, b):
        return 2 * np.sum(a & b) / (a.sum() + b.sum())

    assert dice(labelled, truth) >= 0.7
    assert dice(labelled, truth) >= dice(otsu, truth) + 0.15
