import logging

import cv2
import numpy as np
import pytest
from skimage.draw import disk, ellipse

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.masks import InstanceSplitter, MaskConfig, binarize, separate_membranes


def smooth_random_canvas(seed, size=96):
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


@pytest.mark.parametrize("seed", [0, 1])
def test_binarisation_matches_the_formula(seed):
    canvas = smooth_random_canvas(seed)
    blurred = cv2.GaussianBlur(canvas, (7, 7), 1.5).astype(np.float64)
    # Gaussian-weighted local mean over 15x15 (sigma from the block size), as OpenCV computes it:
    # separable kernel, replicated borders, rounded to uint8.
    kernel = cv2.getGaussianKernel(15, 0)
    local_mean = np.round(cv2.sepFilter2D(blurred, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE))
    expected = blurred <= local_mean - 3
    foreground = binarize(canvas)
    assert foreground.dtype == bool
    np.testing.assert_array_equal(foreground, expected)
    assert 0.05 < foreground.mean() < 0.6


def test_dark_disk_on_bright_canvas_is_foreground():
    canvas = np.full((64, 64), 200, dtype=np.uint8)
    canvas[disk((32, 32), 4)] = 40
    foreground = binarize(canvas)
    assert foreground[32, 32] and not foreground[5, 5] and not foreground[32, 50]


def label_image(shapes, size=128):
    labels = np.zeros((size, size), dtype=np.int32)
    for index, coords in enumerate(shapes, start=1):
        labels[coords] = index
    return labels


def test_circularity_split_sorts_disks_from_bands_rings_and_stripes():
    size = 128
    ring = np.zeros((size, size), dtype=bool)
    ring[disk((96, 96), 14)] = True
    ring[disk((96, 96), 10)] = False
    shapes = [
        disk((20, 20), 8),  # macromolecule
        disk((20, 60), 10),  # macromolecule
        (slice(50, 54), slice(10, 110)),  # membrane band
        np.nonzero(ring),  # membrane ring (a vesicle)
        ellipse(100, 30, 4, 20),  # elongated stripe
    ]
    labels = label_image(shapes, size)
    binary = labels > 0
    membranes, macromolecules = separate_membranes(binary, labels)
    assert macromolecules.dtype == np.int32 and macromolecules.max() == 2
    assert set(np.unique(macromolecules[labels == 1])) == {1}
    assert set(np.unique(macromolecules[labels == 2])) == {2}
    np.testing.assert_array_equal(membranes, np.isin(labels, [3, 4, 5]))


def test_foreground_outside_every_instance_is_membrane():
    labels = label_image([disk((30, 30), 8)], 64)
    binary = labels > 0
    binary[50:52, 5:60] = True  # foreground the splitter left unlabelled
    membranes, macromolecules = separate_membranes(binary, labels)
    assert macromolecules.max() == 1
    np.testing.assert_array_equal(membranes, binary & (labels == 0))


def test_watershed_splits_touching_disks_and_keeps_a_band_whole():
    binary = np.zeros((96, 96), dtype=bool)
    binary[disk((30, 30), 6)] = True
    binary[disk((30, 41), 6)] = True  # overlaps the first disk
    binary[70:76, 5:90] = True  # a membrane band of constant width: one instance, not a chain of chunks
    binary[88, 10:60] = True  # a 1-px line: too thin for a deep enough distance maximum, still an instance
    splitter = InstanceSplitter(MaskConfig(splitter="watershed"))
    assert splitter.method == "watershed"
    labels = splitter.split(binary)
    assert labels.dtype == np.int32 and labels.shape == binary.shape
    assert labels[30, 30] != labels[30, 41] and labels[30, 30] > 0 and labels[30, 41] > 0
    assert len(np.unique(labels[70:76, 5:90])) == 1
    assert len(np.unique(labels[88, 10:60])) == 1
    assert labels.max() == 4
    np.testing.assert_array_equal(labels > 0, binary)


def test_watershed_drops_pieces_below_the_minimum_size():
    binary = np.zeros((32, 32), dtype=bool)
    binary[2:5, 2:5] = True  # 9 px
    binary[disk((20, 20), 5)] = True
    labels = InstanceSplitter(MaskConfig(splitter="watershed")).split(binary)
    assert labels.max() == 1 and labels[3, 3] == 0


@pytest.fixture
def empty_model_dir(tmp_path, monkeypatch):
    from cellpose import models

    folder = tmp_path / "cellpose-models"
    folder.mkdir()
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(folder))
    monkeypatch.setattr(models, "MODEL_DIR", folder)
    monkeypatch.setattr(models, "MODEL_LIST_PATH", str(folder / "gui_models.txt"))
    return folder


@pytest.fixture
def random_weights(tmp_path):
    """A cellpose 3 network of the cyto3 architecture with random weights, saved as cellpose saves it."""
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(0)
    net = CPnet([2, 32, 64, 128, 256], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=30.0)
    path = tmp_path / "random_cp3"
    net.save_model(str(path))
    return path


def test_auto_falls_back_to_watershed_without_weights(empty_model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="cryodiffseg"):
        splitter = InstanceSplitter(MaskConfig(splitter="auto"))
    assert splitter.method == "watershed"
    assert any("watershed" in r.message and "cyto3" in r.message for r in caplog.records)
    assert list(empty_model_dir.iterdir()) == []  # nothing was downloaded


def test_requesting_cellpose_without_weights_is_an_error(empty_model_dir):
    with pytest.raises(CryoDiffSegError, match="CELLPOSE_LOCAL_MODELS_PATH"):
        InstanceSplitter(MaskConfig(splitter="cellpose"))
    with pytest.raises(CryoDiffSegError, match="does not exist"):
        InstanceSplitter(MaskConfig(splitter="cellpose", cellpose_model=str(empty_model_dir / "missing.pth")))


def test_unknown_splitter_is_an_error():
    with pytest.raises(CryoDiffSegError, match="splitter"):
        InstanceSplitter(MaskConfig(splitter="magic"))


def test_cellpose_from_a_weights_path_end_to_end(random_weights):
    config = MaskConfig(splitter="cellpose", cellpose_model=str(random_weights), cellpose_gpu=False)
    splitter = InstanceSplitter(config)
    assert splitter.method == "cellpose"
    binary = np.zeros((64, 64), dtype=bool)
    binary[disk((20, 20), 5)] = True
    binary[disk((40, 44), 5)] = True
    labels = splitter.split(binary)
    assert labels.dtype == np.int32 and labels.shape == binary.shape and labels.min() >= 0


def test_auto_uses_cellpose_when_the_named_model_is_in_the_model_folder(empty_model_dir, random_weights, caplog):
    (empty_model_dir / "cyto3").write_bytes(random_weights.read_bytes())
    with caplog.at_level(logging.INFO, logger="cryodiffseg"):
        splitter = InstanceSplitter(MaskConfig(cellpose_gpu=False))
    assert splitter.method == "cellpose"
    assert any("cellpose" in r.message and "found" in r.message for r in caplog.records)


def test_auto_falls_back_when_the_weights_file_is_broken(empty_model_dir, caplog):
    (empty_model_dir / "cyto3").write_bytes(b"not a network")
    with caplog.at_level(logging.INFO, logger="cryodiffseg"):
        splitter = InstanceSplitter(MaskConfig(cellpose_gpu=False))
    assert splitter.method == "watershed"
    with pytest.raises(CryoDiffSegError, match="could not load"):
        InstanceSplitter(MaskConfig(splitter="cellpose", cellpose_gpu=False))
