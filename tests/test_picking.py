import csv
import json
import shlex

import mrcfile
import numpy as np
import pytest
from pseudolabel_folders import write_pseudolabel_folder
import torch

from cryodiffseg.checkpoints import load_checkpoint, save_checkpoint
from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.evaluation import evaluate_points, read_points
from cryodiffseg.picking import (
    PickerConfig,
    PickerTrainingConfig,
    PickingConfig,
    local_maxima,
    non_max_suppression,
    pick_particles,
    train_picker,
)
from cryodiffseg.picking.calibration import FALLBACK_THRESHOLD, choose_threshold
from cryodiffseg.picking.data import SampleDrawer, open_source
from cryodiffseg.picking.pick import load_picker
from cryodiffseg.picking.volume import PickerVolume, mirror_index
from cryodiffseg.pseudolabel.blobs import held_out_slices
from cryodiffseg.synthetic import PhantomConfig, generate_phantom, write_phantom
from cryodiffseg.tomoio import read_tomogram, write_mrc

VOXEL_A = 16.0
RADIUS = 125.0 / VOXEL_A  # a 25 nm particle, in voxels
LABELLED = list(range(16, 32))
FAST = PickerTrainingConfig(iterations=120, batch_size=8, patch_size=48, checkpoint_every=40, seed=0)


def pseudo_points(particles_xyz, labelled_slices, seed=0):
    """Sparse, noisy points like the pseudo-label stage finds: 80% of the particles crossing the labelled
    slices, at the first labelled slice through them, shifted by ~1 voxel in x and y."""
    rng = np.random.default_rng(seed)
    points = []
    for x, y, z in particles_xyz:
        crossing = [s for s in labelled_slices if abs(s - z) < 0.8 * RADIUS]
        if crossing and rng.random() < 0.8:
            points.append((x + rng.normal(0, 1), y + rng.normal(0, 1), crossing[0]))
    return np.array(points)


def phantom(seed, **overrides):
    config = dict(shape=(48, 128, 128), voxel_size_A=VOXEL_A, seed=seed, n_ribosomes=30)
    return generate_phantom(PhantomConfig(**{**config, **overrides}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A picker trained on one phantom's pseudo-points, and a second phantom to test it on."""
    root = tmp_path_factory.mktemp("picking")
    train = phantom(seed=1)
    train_paths = write_phantom(train, root / "train")
    points = pseudo_points(train.particles, LABELLED)
    assert len(points) >= 10
    # The phantom's particles lie in slices 8-39: held-out slices start 3 voxels beyond the labelled ones.
    held_out = held_out_slices(LABELLED, 3, 12, train.tomogram.shape[0])
    calibration = train.particles[np.isin(np.rint(train.particles[:, 2]).astype(int), held_out)]
    assert len(calibration) >= 3
    pseudolabels = write_pseudolabel_folder(root / "pseudolabels", train_paths["tomogram"], LABELLED, points_xyz=points,
                                            calibration_xyz=calibration, calibration_slices=held_out)
    model = train_picker([pseudolabels], root / "picker", FAST)
    test_paths = write_phantom(phantom(seed=2), root / "test")
    return {"root": root, "model": model, "pseudolabels": pseudolabels, "test": test_paths}


def f1_of(paths, truth_csv):
    return evaluate_points(paths["particles_csv"], truth_csv, radius=RADIUS)["f1"]


def test_training_reduces_the_loss_and_records_the_model(trained):
    record = json.loads((trained["root"] / "picker" / "training.json").read_text())
    history = record["history"]
    assert history[0]["iteration"] == 0 and history[-1]["iteration"] == FAST.iterations
    assert history[-1]["monitor_loss"] < 0.6 * history[0]["monitor_loss"]
    assert history[-1]["training_loss"] < history[1]["training_loss"]
    _, checkpoint = load_checkpoint(trained["model"], "particle-picker")
    assert checkpoint["voxel_size_A"] == VOXEL_A
    assert checkpoint["particle_diameter_voxels"] == pytest.approx(2 * RADIUS)
    assert checkpoint["architecture"] == PickerConfig().to_record()
    assert checkpoint["normalisation"]["clip_std"] > 0
    assert checkpoint["sources"][0]["pseudolabels"] == str(trained["pseudolabels"])
    assert (trained["root"] / "picker" / "last" / "model.safetensors").is_file()


def test_trained_picker_finds_particles_an_untrained_one_does_not(trained, tmp_path):
    tomogram, truth = trained["test"]["tomogram"], trained["test"]["particles"]
    picked = pick_particles(tomogram, trained["model"], tmp_path / "trained")
    _, record = load_checkpoint(trained["model"], "particle-picker")
    save_checkpoint(tmp_path / "untrained", PickerConfig().build().state_dict(), record)
    untrained = pick_particles(tomogram, tmp_path / "untrained", tmp_path / "untrained_picks")
    trained_f1, untrained_f1 = f1_of(picked, truth), f1_of(untrained, truth)
    assert trained_f1 >= 0.6, trained_f1
    assert trained_f1 > untrained_f1 + 0.4


def test_threshold_is_calibrated_on_held_out_points_stored_and_used(trained, tmp_path):
    _, record = load_checkpoint(trained["model"], "particle-picker")
    calibration = record["threshold_calibration"]
    assert calibration["method"] == "held-out points" and calibration["points"] >= 3
    assert 0.05 <= record["threshold"] < 1.0 and calibration["f1"] > 0.5
    training = json.loads((trained["root"] / "picker" / "training.json").read_text())
    assert training["threshold"] == record["threshold"]
    picked = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path / "picks")
    summary = json.loads(picked["summary"].read_text())
    assert summary["threshold"] == record["threshold"] and summary["threshold_origin"].startswith("calibrated")
    scores = np.array([row[3] for row in read_csv_rows(picked["particles_csv"])], dtype=float)
    assert len(scores) and scores.min() >= record["threshold"]
    given = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path / "given", PickingConfig(threshold=0.9))
    assert json.loads(given["summary"].read_text())["threshold_origin"] == "given"


def test_a_picker_without_a_stored_threshold_still_loads_and_picks_at_the_fallback(trained, tmp_path):
    state, record = load_checkpoint(trained["model"], "particle-picker")
    older = {k: v for k, v in record.items() if k not in ("threshold", "threshold_calibration")}
    save_checkpoint(tmp_path / "older", state, older)
    picked = pick_particles(trained["test"]["tomogram"], tmp_path / "older", tmp_path / "picks")
    summary = json.loads(picked["summary"].read_text())
    assert summary["threshold"] == FALLBACK_THRESHOLD and "before thresholds were calibrated" in summary["threshold_origin"]


def test_without_held_out_points_training_falls_back_and_says_why(tmp_path, caplog):
    train = phantom(seed=4)
    paths = write_phantom(train, tmp_path / "data")
    folder = write_pseudolabel_folder(tmp_path / "labels", paths["tomogram"], LABELLED, points_xyz=pseudo_points(train.particles, LABELLED))
    model = train_picker([folder], tmp_path / "picker", PickerTrainingConfig(iterations=2, batch_size=2, patch_size=32, checkpoint_every=1))
    _, record = load_checkpoint(model, "particle-picker")
    assert record["threshold"] == FALLBACK_THRESHOLD and "0 held-out point" in record["threshold_calibration"]["method"]
    assert "at least 3 are needed" in caplog.text


def test_calibration_separates_a_score_distribution_with_known_positives():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 200, size=(20, 3))
    true_picks = truth + rng.normal(0, 0.5, truth.shape)
    false_picks = rng.uniform(300, 500, size=(60, 3))  # far from every true particle
    picks = np.concatenate([true_picks, false_picks])
    scores = np.concatenate([rng.uniform(0.7, 0.95, 20), rng.uniform(0.05, 0.5, 60)])
    calibration = choose_threshold(scores, picks, truth, radius=5.0)
    assert calibration.f1 == 1.0 and 0.5 < calibration.threshold <= 0.7
    assert calibration.threshold == pytest.approx(0.6, abs=0.02)  # the middle of the gap, not its edge


def test_picking_rescales_a_tomogram_at_another_voxel_size(trained, tmp_path):
    coarse = phantom(seed=3, voxel_size_A=20.0, n_ribosomes=25)  # particles 12.5 voxels wide instead of 15.6
    paths = write_phantom(coarse, tmp_path / "coarse")
    picked = pick_particles(paths["tomogram"], trained["root"] / "picker", tmp_path / "picks")  # training folder: best/
    assert f1_of(picked, paths["particles"]) >= 0.5
    summary = json.loads(picked["summary"].read_text())
    assert summary["picker_voxel_size_A"] == VOXEL_A and summary["tomogram_voxel_size_A"] == 20.0


def test_chunked_picking_equals_one_piece(trained, tmp_path, monkeypatch):
    import cryodiffseg.picking.pick as pick_module
    from cryodiffseg.tomoio import release_pages

    tomogram = trained["test"]["tomogram"]
    whole = pick_particles(tomogram, trained["model"], tmp_path / "whole",
                           PickingConfig(tile_size=512, chunk_slices=1000, threshold=0.3, save_heatmap=True))
    released = []  # memory maps handed back to the page cache (writeable: the heatmap being written)

    def recording_release(volume):
        released.append(bool(volume.flags.writeable))
        release_pages(volume)

    monkeypatch.setattr(pick_module, "release_pages", recording_release)
    chunked = pick_particles(tomogram, trained["model"], tmp_path / "chunked",
                             PickingConfig(tile_size=96, chunk_slices=7, batch_size=3, threshold=0.3, save_heatmap=True))
    with mrcfile.open(tomogram, header_only=True) as header:
        chunks = -(-int(header.header.nz) // 7)
    assert released.count(False) == released.count(True) == chunks > 1  # the tomogram and the heatmap, every chunk
    with mrcfile.open(whole["heatmap"]) as a, mrcfile.open(chunked["heatmap"]) as b:
        np.testing.assert_allclose(a.data, b.data, atol=1e-5)
        assert a.voxel_size.x == pytest.approx(VOXEL_A)
    one, many = read_csv_rows(whole["particles_csv"]), read_csv_rows(chunked["particles_csv"])
    assert len(one) > 5
    np.testing.assert_allclose(np.array(one, float), np.array(many, float), atol=2e-4)


def read_csv_rows(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["x", "y", "z", "score"]
    return rows[1:]


def read_star_loop(path):
    """(block name, column names, rows) of the single loop in a STAR file."""
    block, columns, rows = None, [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "loop_":
            continue
        if line.startswith("data_"):
            block = line
        elif line.startswith("_"):
            columns.append(line.split()[0])
        else:
            rows.append(shlex.split(line))
    return block, columns, rows


def test_pick_writes_a_score_histogram_and_an_average_that_tells_particles_from_random(trained, tmp_path):
    picked = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path / "picks")
    for name in ("score_histogram", "average_figure"):
        assert picked[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(picked["summary"].read_text())
    assert summary["average_box"] == 26  # 1.6 x a 15.6-voxel particle, even
    assert summary["picks_average"]["centre_contrast"] > summary["random_average"]["centre_contrast"] + 0.5
    assert summary["picks_average"]["fsc_low_shells"] > summary["random_average"]["fsc_low_shells"] + 0.2
    quiet = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path / "quiet", PickingConfig(average=False))
    assert "average_figure" not in quiet and "picks_average" not in json.loads(quiet["summary"].read_text())


def test_csv_and_star_outputs_read_back(trained, tmp_path):
    paths = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path, PickingConfig(max_points=7))
    assert paths["particles_csv"].name == "tomogram_particles.csv"
    rows = np.array(read_csv_rows(paths["particles_csv"]), dtype=float)
    assert len(rows) == 7
    assert np.all(np.diff(rows[:, 3]) <= 0) and np.all((rows[:, 3] >= 0.5) & (rows[:, 3] <= 1))
    np.testing.assert_allclose(read_points(paths["particles_csv"]), rows[:, :3])
    block, columns, star_rows = read_star_loop(paths["particles_star"])
    assert block == "data_particles"
    assert columns == ["_rlnMicrographName", "_rlnTomoName", "_rlnCoordinateX", "_rlnCoordinateY",
                       "_rlnCoordinateZ", "_rlnAutopickFigureOfMerit"]
    assert all(row[:2] == ["tomogram.mrc", "tomogram"] for row in star_rows)
    np.testing.assert_allclose(np.array([row[2:] for row in star_rows], dtype=float), rows, atol=1e-4)


def test_no_particles_still_writes_well_formed_files(trained, tmp_path):
    paths = pick_particles(trained["test"]["tomogram"], trained["model"], tmp_path, PickingConfig(max_points=0))
    assert read_csv_rows(paths["particles_csv"]) == []
    assert read_star_loop(paths["particles_star"])[2] == []
    assert json.loads(paths["summary"].read_text())["particles"] == 0


def test_checkpoint_round_trip(trained):
    picker = load_picker(trained["model"], torch.device("cpu"))
    state, _ = load_checkpoint(trained["model"], "particle-picker")
    assert picker.architecture == PickerConfig()
    assert not picker.model.training
    # The loaded network is the checkpoint's, its batch norms folded into its convolutions: the same function.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in picker.model.modules())
    stored = PickerConfig().build()
    stored.load_state_dict(state)
    stacks = torch.randn(2, PickerConfig().in_channels, 48, 64)
    with torch.inference_mode():
        torch.testing.assert_close(picker.model(stacks), stored.eval()(stacks), atol=1e-5, rtol=1e-5)
    assert picker.record["kind"] == "particle-picker"
    assert (picker.voxel_size_A, picker.particle_diameter_voxels) == (VOXEL_A, pytest.approx(2 * RADIUS))


def test_resume_continues_and_refuses_other_settings(trained, tmp_path):
    config = PickerTrainingConfig(iterations=2, batch_size=2, patch_size=32, checkpoint_every=1, monitor_samples=2)
    train_picker([trained["pseudolabels"]], tmp_path / "run", config)
    longer = PickerTrainingConfig(**{**config.__dict__, "iterations": 3})
    train_picker([trained["pseudolabels"]], tmp_path / "run", longer)
    history = json.loads((tmp_path / "run" / "training.json").read_text())["history"]
    assert [h["iteration"] for h in history] == [0, 1, 2, 3]
    other = PickerTrainingConfig(**{**config.__dict__, "iterations": 4, "learning_rate": 1e-4})
    with pytest.raises(CryoDiffSegError, match="other settings"):
        train_picker([trained["pseudolabels"]], tmp_path / "run", other)


def test_resume_refuses_labels_that_changed_under_the_same_folder(trained, tmp_path):
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(trained["pseudolabels"], labels)
    config = PickerTrainingConfig(iterations=2, batch_size=2, patch_size=32, checkpoint_every=1, monitor_samples=2)
    train_picker([labels], tmp_path / "run", config)
    rows = (labels / "points.csv").read_text().splitlines()
    (labels / "points.csv").write_text("\n".join(rows[:-1]) + "\n")  # one pseudo-point fewer: other labels
    with pytest.raises(CryoDiffSegError, match="other settings"):
        train_picker([labels], tmp_path / "run", PickerTrainingConfig(**{**config.__dict__, "iterations": 3}))


def test_non_max_suppression_keeps_the_strongest_of_close_points():
    points = np.array([[0, 0, 0], [3, 0, 0], [0, 4, 0], [20, 0, 0], [25, 0, 0]], dtype=float)
    scores = np.array([0.6, 0.9, 0.7, 0.5, 0.8])
    kept = non_max_suppression(points, scores, min_distance=5.0)
    # (3,0,0) beats its neighbours at 3 and 5 (exactly 5: not closer, kept); (0,0,0) loses to it;
    # (20,0,0) and (25,0,0) are exactly 5 apart: both stay.
    assert kept.tolist() == [1, 4, 2, 3]
    assert non_max_suppression(points[:2], scores[:2], min_distance=10.0).tolist() == [1]
    assert non_max_suppression(np.zeros((0, 3)), np.zeros(0), 5.0).tolist() == []


def test_local_maxima_above_threshold():
    heatmap = np.zeros((5, 6, 7), dtype=np.float32)
    heatmap[2, 3, 4] = 0.9
    heatmap[2, 3, 5] = 0.8  # beside a higher voxel: not a maximum
    heatmap[0, 0, 0] = 0.4  # a maximum, below the threshold
    points, scores = local_maxima(heatmap, threshold=0.5)
    np.testing.assert_array_equal(points, [[4, 3, 2]])  # x, y, z
    np.testing.assert_allclose(scores, [0.9])


def test_picker_volume_mirrors_and_resamples(tmp_path):
    data = np.arange(8 * 12 * 16, dtype=np.float32).reshape(8, 12, 16)  # value = 192 z + 16 y + x
    write_mrc(tmp_path / "ramp.mrc", data, 10.0)
    tomogram = read_tomogram(tmp_path / "ramp.mrc")
    same = PickerVolume(tomogram, 10.0)
    standardised = (data - same.mean) / same.std
    np.testing.assert_allclose(same.block((0, 0, 0), data.shape), standardised, atol=1e-5)
    np.testing.assert_array_equal(mirror_index(np.arange(-2, 6), 4), [1, 0, 0, 1, 2, 3, 3, 2])
    np.testing.assert_allclose(same.block((-1, 0, 0), (0, 12, 16))[0], standardised[0], atol=1e-5)
    coarse = PickerVolume(tomogram, 20.0)  # half as many voxels per axis
    assert coarse.shape == (4, 6, 8)
    np.testing.assert_allclose(coarse.to_tomogram(np.array([[1.0, 1.0, 1.0]])), [[2.5, 2.5, 2.5]])
    # Away from the borders a linear ramp stays linear through anti-aliasing and interpolation.
    value = coarse.block((1, 1, 1), (2, 2, 2))[0, 0, 0] * coarse.std + coarse.mean
    assert value == pytest.approx(2.5 * (192 + 16 + 1), abs=0.05)


def test_training_samples_come_from_labelled_slices_only(tmp_path):
    data = np.repeat(np.arange(40, dtype=np.float32)[:, None, None], 32, axis=1).repeat(32, axis=2)  # value = z
    write_mrc(tmp_path / "slices.mrc", data, VOXEL_A)
    folder = write_pseudolabel_folder(tmp_path / "pl", tmp_path / "slices.mrc", [10, 11, 12, 30], points_xyz=[(16, 16, 11)])
    source = open_source(folder)
    drawer = SampleDrawer([source], context=2, patch=16, sigma=2.0, positive_fraction=0.5, seed=0)
    stacks, targets = drawer.batch(64)
    middle_z = np.round(stacks[:, 2, 0, 0] * source.volume.std + source.volume.mean)
    assert set(middle_z.tolist()) <= {10, 11, 12, 30} and {11, 30} <= set(middle_z.tolist())
    assert targets.max() > 0.5  # the point's blob is drawn


def test_bad_inputs_raise_clear_errors(trained, tmp_path):
    tomogram = trained["test"]["tomogram"]
    with pytest.raises(CryoDiffSegError, match="not found"):
        pick_particles(tomogram, tmp_path / "no_model", tmp_path / "out")
    _, record = load_checkpoint(trained["model"], "particle-picker")
    save_checkpoint(tmp_path / "other", PickerConfig().build().state_dict(), {**record, "kind": "membrane-segmenter"})
    with pytest.raises(CryoDiffSegError, match="not a 'particle-picker' model"):
        pick_particles(tomogram, tmp_path / "other", tmp_path / "out")
    with pytest.raises(CryoDiffSegError, match="threshold"):
        pick_particles(tomogram, trained["model"], tmp_path / "out", PickingConfig(threshold=0))
    empty = write_pseudolabel_folder(tmp_path / "empty", tomogram, LABELLED, points_xyz=[])
    with pytest.raises(CryoDiffSegError, match="no pseudo-points to train on"):
        train_picker([empty], tmp_path / "never", FAST)
    with pytest.raises(CryoDiffSegError, match="not a pseudo-label folder"):
        train_picker([tmp_path], tmp_path / "never", FAST)
    with pytest.raises(CryoDiffSegError, match="No pseudo-label folders"):
        train_picker([], tmp_path / "never", FAST)
