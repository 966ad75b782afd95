"""Membrane U-Net: training on pseudo-labels, resuming, and chunked whole-tomogram segmentation."""

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from pseudolabel_folders import write_pseudolabel_folder
import torch
from scipy import ndimage as ndi

from cryodiffseg.checkpoints import save_checkpoint
from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.segmentation import (
    MembraneTrainingConfig,
    SegmentationConfig,
    UNet2D,
    UNetConfig,
    load_membrane_model,
    segment_tomogram,
    train_membrane_model,
)
from cryodiffseg.segmentation.components import membrane_pieces, write_membrane_mask
from cryodiffseg.segmentation.dataset import (
    IGNORE,
    CropSampler,
    PseudoLabelSet,
    labelled_slices,
    read_pseudolabel_folder,
    split_slices,
)
from cryodiffseg.segmentation.normalisation import NORMALISATION
from cryodiffseg.folding import folded_for_inference
from cryodiffseg.synthetic import PhantomConfig, generate_phantom, write_phantom
from cryodiffseg.tomoio import Tomogram, write_mrc

TINY = UNetConfig(channels=(8, 16, 32), dropouts=(0.0, 0.1, 0.2))
LABELLED = [3, 7, 11, 15, 19, 23]
HELD_BACK = [26, 27, 28, 29, 30]


def tiny_training(**changes) -> MembraneTrainingConfig:
    settings = dict(iterations=60, batch_size=4, crop_size=64, validate_every=20, validation_crops=4, architecture=TINY, device="cpu")
    settings.update(changes)
    return MembraneTrainingConfig(**settings)


def save_model(folder, config=TINY, voxel_size=10.0, kind="membrane-unet", seed=0):
    torch.manual_seed(seed)
    record = {"kind": kind, "architecture": config.to_dict(), "normalisation": NORMALISATION, "voxel_size_A": voxel_size}
    return save_checkpoint(folder, UNet2D(config).state_dict(), record)


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A (32, 96, 96) phantom; pseudo-labels are its ground truth on LABELLED slices, zero elsewhere."""
    generated = generate_phantom(PhantomConfig(shape=(32, 96, 96), voxel_size_A=10.0, seed=2))
    paths = write_phantom(generated, tmp_path_factory.mktemp("phantom"))
    mask = np.zeros(generated.membrane.shape, np.int8)
    mask[LABELLED] = generated.membrane[LABELLED]
    folder = write_pseudolabel_folder(tmp_path_factory.mktemp("pseudolabels"), paths["tomogram"], LABELLED, mask=mask)
    return generated, paths["tomogram"], folder


@pytest.fixture(scope="module")
def trained(phantom, tmp_path_factory):
    _, _, folder = phantom
    return train_membrane_model([folder], tmp_path_factory.mktemp("model"), tiny_training())


# ------------------------------------------------------------------------------------------- training


def test_training_lowers_the_loss_and_beats_an_untrained_model_on_held_back_slices(phantom, trained, tmp_path):
    generated, tomogram, _ = phantom
    history = json.loads((trained / "model.json").read_text())["history"]
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert min(h["validation_loss"] for h in history) < history[0]["validation_loss"]
    untrained = save_model(tmp_path / "untrained")
    config = SegmentationConfig(min_component_voxels=0, device="cpu")
    scores = {}
    for name, model in (("trained", trained), ("untrained", untrained)):
        mask = mrcfile.read(segment_tomogram(tomogram, model, tmp_path / name, config)["mask"])
        scores[name] = dice(mask[HELD_BACK], generated.membrane[HELD_BACK])
    assert scores["trained"] > scores["untrained"] + 0.2, scores
    assert scores["trained"] > 0.4, scores


def test_checkpoint_record_and_resumable_state(trained):
    model, record = load_membrane_model(trained)
    assert record["kind"] == "membrane-unet"
    assert UNetConfig(**record["architecture"]) == TINY == model.config
    assert record["normalisation"] == NORMALISATION == "slice-zscore"
    assert record["voxel_size_A"] == pytest.approx(10.0)
    assert record["iterations"] == 60
    assert record["best_validation"]["validation_loss"] == min(h["validation_loss"] for h in record["history"])
    (source,) = record["sources"]
    assert sorted(source["train_slices"] + source["validation_slices"]) == LABELLED
    assert len(source["validation_slices"]) == 1  # 20% of 6 slices
    state = torch.load(trained / "training_state" / "state.pt", weights_only=True)
    assert state["step"] == 60
    assert set(state["model"]) == set(UNet2D(TINY).state_dict())
    assert state["optimiser"]["state"]  # momentum buffers
    assert not list(trained.glob(".*"))  # no temporary files left behind


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(phantom, tmp_path):
    _, _, folder = phantom
    config = tiny_training(iterations=6, validate_every=3)
    whole = train_membrane_model([folder], tmp_path / "whole", config)
    train_membrane_model([folder], tmp_path / "split", tiny_training(iterations=3, validate_every=3))
    assert torch.load(tmp_path / "split" / "training_state" / "state.pt", weights_only=True)["step"] == 3
    split = train_membrane_model([folder], tmp_path / "split", config)
    states = [torch.load(p / "training_state" / "state.pt", weights_only=True) for p in (whole, split)]
    assert states[0]["step"] == states[1]["step"] == 6
    for name, tensor in states[0]["model"].items():
        torch.testing.assert_close(states[1]["model"][name], tensor, rtol=1e-5, atol=1e-6)
    assert json.loads((split / "model.json").read_text())["iterations"] == 6
    with pytest.raises(CryoDiffSegError, match="other settings"):
        train_membrane_model([folder], tmp_path / "split", tiny_training(iterations=9, validate_every=3, learning_rate=0.1))


def test_resume_refuses_labels_that_changed_under_the_same_folder(phantom, tmp_path):
    generated, tomogram, _ = phantom
    folder = write_pseudolabel_folder(tmp_path / "labels", tomogram, LABELLED, mask=generated.membrane)
    train_membrane_model([folder], tmp_path / "model", tiny_training(iterations=2, validate_every=1))
    changed = np.array(generated.membrane, copy=True)
    changed[LABELLED[0]] = 0  # the same folder, other labels
    write_pseudolabel_folder(tmp_path / "labels", tomogram, LABELLED, mask=changed)
    with pytest.raises(CryoDiffSegError, match="other settings or data"):
        train_membrane_model([folder], tmp_path / "model", tiny_training(iterations=3, validate_every=1))


def test_a_single_labelled_slice_trains_without_validation(phantom, tmp_path):
    generated, tomogram, _ = phantom
    folder = write_pseudolabel_folder(tmp_path / "one", tomogram, [5], mask=generated.membrane)
    out = train_membrane_model([folder], tmp_path / "model", tiny_training(iterations=2))
    record = json.loads((out / "model.json").read_text())
    assert record["best_validation"] is None and record["iterations"] == 2
    assert record["sources"][0]["train_slices"] == [5] and record["sources"][0]["validation_slices"] == []


def test_unlabelled_slices_are_never_read(phantom, tmp_path):
    """Unlabelled slices set to 'membrane everywhere': no training crop may ever contain one of them."""
    generated, tomogram, _ = phantom
    mask = np.ones(generated.membrane.shape, np.int8)
    mask[LABELLED] = 0
    folder = write_pseudolabel_folder(tmp_path, tomogram, LABELLED, mask=mask)
    pseudo = read_pseudolabel_folder(folder)
    slices = labelled_slices([pseudo])
    assert [s.z for s in slices] == LABELLED
    sampler = CropSampler([pseudo], slices, crop_size=64)
    rng = np.random.default_rng(0)
    for _ in range(10):
        images, labels = sampler.batch(8, rng)
        assert images.shape == (8, 1, 64, 64) and labels.shape == (8, 64, 64)
        assert set(labels.unique().tolist()) <= {IGNORE, 0}


def test_split_is_by_whole_slices_and_deterministic(phantom):
    slices = labelled_slices([read_pseudolabel_folder(phantom[2])] * 2)  # 12 slices
    train, validation = split_slices(slices, 0.2, seed=5)
    assert (train, validation) == split_slices(slices, 0.2, seed=5)
    assert len(validation) == 2 and len(train) == 10
    assert not set(train) & set(validation)
    assert split_slices(slices, 0.2, seed=6) != (train, validation)
    assert split_slices(slices[:1], 0.2, seed=0) == (slices[:1], [])


def test_augmentation_moves_image_and_labels_together(tmp_path):
    """Labels that threshold a smooth image must still threshold it after flips and rotations."""
    image = ndi.gaussian_filter(np.random.default_rng(0).normal(size=(2, 96, 96)), (0, 4, 4)).astype(np.float32)
    pseudo = PseudoLabelSet(tmp_path, Tomogram(tmp_path / "t.mrc", image, 10.0), (image > 0).astype(np.int8), [0])
    (item,) = labelled_slices([pseudo])
    sampler = CropSampler([pseudo], [item], crop_size=64, flips=True, max_rotation_deg=20.0)
    images, labels = sampler.batch(16, np.random.default_rng(1))
    valid = labels != IGNORE
    assert valid.float().mean() > 0.9
    above_zero = images[:, 0] > -item.mean / item.std  # raw value 0 after the slice's z-score
    assert (above_zero == (labels == 1))[valid].float().mean() > 0.97


# ------------------------------------------------------------------------------------------- segmentation


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("untrained"), seed=3)


def test_chunks_and_tiles_give_the_same_result_as_one_piece(phantom, model_dir, tmp_path):
    _, tomogram, _ = phantom
    base = dict(min_component_voxels=20, threshold=0.5, device="cpu")
    whole = segment_tomogram(tomogram, model_dir, tmp_path / "whole", SegmentationConfig(chunk_slices=32, **base))
    chunked = segment_tomogram(tomogram, model_dir, tmp_path / "chunked", SegmentationConfig(chunk_slices=5, batch_size=3, **base))
    one, many = mrcfile.read(whole["probability"]), mrcfile.read(chunked["probability"])
    np.testing.assert_allclose(many, one, atol=1e-5)
    assert (mrcfile.read(whole["mask"]) != mrcfile.read(chunked["mask"])).sum() <= 2
    tiled = segment_tomogram(tomogram, model_dir, tmp_path / "tiled", SegmentationConfig(tile_size=64, tile_overlap=24, **base))
    assert np.abs(mrcfile.read(tiled["probability"]) - one).mean() < 0.02  # tile seams: border context only


def test_outputs_carry_the_tomograms_geometry(model_dir, tmp_path):
    volume = np.random.default_rng(0).normal(size=(10, 40, 56)).astype(np.float32)
    tomogram = write_mrc(tmp_path / "in" / "cell.mrc", volume, 13.5, origin=(100.0, -20.0, 7.5))
    outputs = segment_tomogram(tomogram, model_dir, tmp_path / "out", SegmentationConfig(device="cpu"))
    assert sorted(outputs) == ["mask", "probability", "record"]
    assert outputs["mask"].name == "cell_membrane_mask.mrc"
    for kind, dtype in (("probability", np.float32), ("mask", np.int8)):
        with mrcfile.open(outputs[kind]) as mrc:
            assert mrc.data.shape == volume.shape and mrc.data.dtype == dtype
            assert mrc.voxel_size.x == pytest.approx(13.5)
            assert tuple(mrc.header.origin.item()) == pytest.approx((100.0, -20.0, 7.5))
            assert mrc.header.dmin <= mrc.header.dmean <= mrc.header.dmax
    record = json.loads(outputs["record"].read_text())
    assert record["resampling"] == pytest.approx(1.35)
    assert not list((tmp_path / "out").glob(".*"))


def test_voxel_size_rescaling_and_other_axes_keep_the_input_shape(model_dir, tmp_path):
    volume = np.random.default_rng(1).normal(size=(12, 30, 44)).astype(np.float32)
    tomogram = write_mrc(tmp_path / "coarse.mrc", volume, 20.0)
    config = SegmentationConfig(device="cpu", axes=("z", "y", "x"), output_probability=False, min_component_voxels=0)
    outputs = segment_tomogram(tomogram, model_dir, tmp_path / "out", config)
    assert "probability" not in outputs
    assert mrcfile.read(outputs["mask"]).shape == volume.shape
    assert json.loads(outputs["record"].read_text())["resampling"] == pytest.approx(2.0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["coarse_membrane_mask.mrc", "coarse_membrane_segmentation.json"]


def test_small_components_are_removed_across_chunk_borders():
    rng = np.random.default_rng(0)
    probability = ndi.gaussian_filter(rng.random((23, 40, 40)), 1.5).astype(np.float32)
    probability = (probability - probability.min()) / np.ptp(probability)
    labels, _ = ndi.label(probability >= 0.5, ndi.generate_binary_structure(3, 1))
    sizes = np.bincount(labels.ravel())
    expected = (sizes >= 30)[labels] & (labels > 0)
    assert 0 < expected.sum() < (labels > 0).sum()  # some components go, some stay
    for chunk in (1, 4, 23):
        mask = np.zeros(probability.shape, np.int8)
        write_membrane_mask(probability, mask, 0.5, 30, chunk)
        np.testing.assert_array_equal(mask, expected)


# ------------------------------------------------------------------------------------------- errors


def test_clear_errors_for_bad_inputs(phantom, model_dir, tmp_path):
    _, tomogram, folder = phantom
    config = SegmentationConfig(device="cpu")
    with pytest.raises(CryoDiffSegError, match="Model folder not found"):
        segment_tomogram(tomogram, tmp_path / "nothing", tmp_path / "out", config)
    with pytest.raises(CryoDiffSegError, match="not a 'membrane-unet' model"):
        segment_tomogram(tomogram, save_model(tmp_path / "other", kind="backbone"), tmp_path / "out", config)
    flat = write_mrc(tmp_path / "flat.mrc", np.zeros((1, 20, 20), np.float32), 10.0)
    with mrcfile.new(tmp_path / "image.mrc") as mrc:
        mrc.set_data(np.ones((20, 20), np.float32))
    with pytest.raises(CryoDiffSegError, match="3-D"):
        segment_tomogram(tmp_path / "image.mrc", model_dir, tmp_path / "out", config)
    with pytest.raises(CryoDiffSegError):
        segment_tomogram(flat, model_dir, tmp_path / "out", config)
    with pytest.raises(CryoDiffSegError, match="axes"):
        segment_tomogram(tomogram, model_dir, tmp_path / "out", SegmentationConfig(axes=("z", "w")))
    wrong_shape = write_pseudolabel_folder(tmp_path / "wrong", tomogram, LABELLED, mask=np.zeros((32, 96, 90), np.int8))
    with pytest.raises(CryoDiffSegError, match="has shape"):
        train_membrane_model([wrong_shape], tmp_path / "model", tiny_training())
    with pytest.raises(CryoDiffSegError, match="pseudolabels.json is missing"):
        train_membrane_model([tmp_path], tmp_path / "model", tiny_training())
    with pytest.raises(CryoDiffSegError, match="multiple of 4"):
        train_membrane_model([folder], tmp_path / "model", tiny_training(crop_size=30))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------- memory


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from cryodiffseg.segmentation import SegmentationConfig, segment_tomogram

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    baseline = status("VmRSS:")
    config = SegmentationConfig(device="cpu")
    segment_tomogram(sys.argv[1], sys.argv[2], sys.argv[3], config)
    print(json.dumps({"baseline": baseline, "peak": status("VmHWM:")}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_stays_below_the_tomogram_size(tmp_path):
    shape = (64, 1024, 1024)  # 256 MiB of float32
    with mrcfile.new_mmap(tmp_path / "large.mrc", shape=shape, mrc_mode=2) as mrc:
        rng = np.random.default_rng(0)
        for z in range(0, shape[0], 8):
            mrc.data[z : z + 8] = rng.standard_normal((8,) + shape[1:], dtype=np.float32)
        mrc.voxel_size = 10.0
    # A model trained at 40 A: planes are shrunk 4x before the network, which keeps the test fast and
    # exercises resampling at scale; the chunks read, normalised and written are full size.
    model = save_model(tmp_path / "model", UNetConfig(channels=(4, 8), dropouts=(0.0, 0.0)), voxel_size=40.0)
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "large.mrc"), str(model), str(tmp_path / "out")],
        capture_output=True, text=True, check=True, timeout=600,
    )
    memory = json.loads(result.stdout.strip().splitlines()[-1])
    growth = memory["peak"] - memory["baseline"]
    input_bytes = int(np.prod(shape)) * 4
    print(f"peak RSS growth {growth / 2**20:.0f} MiB for a {input_bytes / 2**20:.0f} MiB tomogram")
    assert growth < input_bytes + 2**30  # the contract
    # Holding the volume and its probabilities would take twice the input; chunks stay well below one input.
    assert growth < input_bytes
    assert mrcfile.mmap(tmp_path / "out" / "large_membrane_mask.mrc").data.shape == shape


def test_a_diverging_training_stops_with_a_clear_error_and_writes_no_model(phantom, tmp_path):
    _, _, folder = phantom
    with pytest.raises(CryoDiffSegError, match="the loss is not finite at iteration .*learning-rate"):
        train_membrane_model([folder], tmp_path / "model", tiny_training(iterations=30, validate_every=1, learning_rate=1e30))
    assert not (tmp_path / "model" / "model.json").exists() and not (tmp_path / "model" / "model.safetensors").exists()
    assert not (tmp_path / "model" / "training_state" / "state.pt").exists()  # diverged before its first save


REFERENCE = Path(__file__).parent / "data" / "segmentation_reference"


def test_segmentation_reproduces_its_stored_reference_output(tmp_path):
    """Speed work keeps the numbers: the probabilities within float rounding, the mask wherever the stored
    probability was not within that rounding of the threshold (tests/data/segmentation_reference/README.md)."""
    config = SegmentationConfig(tile_size=32, tile_overlap=8, min_component_voxels=5, device="cpu")
    outputs = segment_tomogram(REFERENCE / "tomogram.mrc", REFERENCE / "model", tmp_path, config)
    expected = np.load(REFERENCE / "expected.npz")
    with mrcfile.open(outputs["probability"]) as probability, mrcfile.open(outputs["mask"]) as mask:
        np.testing.assert_allclose(probability.data, expected["probability"], atol=1e-5)
        decided = np.abs(expected["probability"] - config.threshold) > 1e-5
        np.testing.assert_array_equal(mask.data[decided], expected["mask"][decided])
    assert 0.3 < expected["mask"].mean() < 0.7 and np.ptp(expected["probability"]) > 0.5  # a reference worth matching


def test_the_folded_inference_copy_computes_what_the_model_does_and_leaves_it_untouched():
    torch.manual_seed(0)
    model = UNet2D(TINY).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 4)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    folded = folded_for_inference(model)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in folded.modules())
    images = torch.randn(2, 1, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(folded(images), model(images), atol=1e-5, rtol=1e-5)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def _reference_pieces(mask, spacing):
    """{frozenset of (x, y, z) points rounded to 0.01: voxel count} from labelling the whole mask at once."""
    labels, count = ndi.label(mask > 0, ndi.generate_binary_structure(3, 1))
    pieces = {}
    for label in range(1, count + 1):
        z, y, x = np.nonzero(labels == label)
        cubes = np.stack([z // spacing, y // spacing, x // spacing], axis=1)
        _, inverse = np.unique(cubes, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        points = {tuple(np.round([x[inverse == i].mean(), y[inverse == i].mean(), z[inverse == i].mean()], 2))
                  for i in range(inverse.max() + 1)}
        pieces[frozenset(points)] = len(z)
    return pieces


def test_membrane_pieces_are_the_masks_connected_pieces_thinned_to_one_point_per_cube_whatever_the_chunks():
    rng = np.random.default_rng(4)
    mask = (ndi.gaussian_filter(rng.random((23, 40, 40)), 1.5) > 0.52).astype(np.int8)
    expected = _reference_pieces(mask, 4)
    assert len(expected) > 3  # several pieces, some across chunk borders
    for chunk in (1, 4, 23):
        pieces = membrane_pieces(mask, chunk, 4)
        ids = pieces[:, 0].astype(int)
        assert sorted(set(ids)) == list(range(1, len(expected) + 1))
        found = {frozenset(tuple(np.round(row[1:], 2)) for row in pieces[ids == piece]): piece
                 for piece in range(1, len(expected) + 1)}
        assert set(found) == set(expected), chunk
        sizes = [expected[points] for points, _ in sorted(found.items(), key=lambda item: item[1])]
        assert sizes == sorted(sizes, reverse=True)  # numbered largest first


def test_segment_writes_the_pieces_when_asked_and_removes_stale_ones_when_not(model_dir, tmp_path):
    volume = np.random.default_rng(2).normal(size=(10, 40, 56)).astype(np.float32)
    tomogram = write_mrc(tmp_path / "cell.mrc", volume, 13.5)
    config = SegmentationConfig(device="cpu", min_component_voxels=0, threshold=0.45, output_pieces=True,
                                piece_spacing=3)
    outputs = segment_tomogram(tomogram, model_dir, tmp_path / "out", config)
    mask = mrcfile.read(outputs["mask"])
    rows = np.loadtxt(outputs["pieces"], delimiter=",", skiprows=1, ndmin=2)
    assert outputs["pieces"].read_text().startswith("piece,x,y,z\n")
    assert mask.any() and len(rows)
    assert np.array_equal(rows, np.round(membrane_pieces(mask, 10, 3), 2))
    record = json.loads(outputs["record"].read_text())
    assert record["outputs"]["pieces"] == "cell_membrane_pieces.csv"
    assert record["membrane_pieces"] == len(np.unique(rows[:, 0]))

    again = segment_tomogram(tomogram, model_dir, tmp_path / "out", dataclasses.replace(config, output_pieces=False))
    assert "pieces" not in again and not outputs["pieces"].exists()
