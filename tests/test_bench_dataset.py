"""The whole-data-set cost section's arithmetic: the mirrored tomogram, the networks' work per stage, the totals."""

import mrcfile
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cryodiffseg.benchmark.dataset_cost import dataset_totals, mirror_to_shape, network_budget
from cryodiffseg.picking.network import HeatmapUNet, PickerConfig
from cryodiffseg.segmentation.unet import UNet2D


def _flops(model, shape):
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.eval()(torch.zeros(shape))
    return counter.get_total_flops()


def test_a_small_simulation_is_mirrored_to_the_large_shape_slice_by_slice(tmp_path):
    small = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    with mrcfile.new(tmp_path / "small.mrc") as mrc:
        mrc.set_data(small)
        mrc.voxel_size = 12.5
    mirror_to_shape(tmp_path / "small.mrc", tmp_path / "large.mrc", (3, 10, 12), chunk=2)
    with mrcfile.open(tmp_path / "large.mrc") as mrc:
        large = mrc.data.copy()
        assert float(mrc.voxel_size.x) == pytest.approx(12.5)
    assert large.shape == (3, 10, 12)
    np.testing.assert_array_equal(large[:, :4, :5], small)
    np.testing.assert_array_equal(large[:, 4:8, :5], small[:, ::-1])  # mirrored, no seam
    np.testing.assert_array_equal(large[:, :4, 5:10], small[:, :, ::-1])
    with pytest.raises(ValueError, match="3 slices, not 4"):
        mirror_to_shape(tmp_path / "small.mrc", tmp_path / "other.mrc", (4, 10, 12))


def test_network_work_counts_every_plane_and_every_picker_tile():
    depth, side = 5, 48
    budget = network_budget((depth, side, side), (2, 3))
    plane = _flops(UNet2D(), (1, 1, 48, 48))  # one padded tile per plane: 48 is a multiple of 16
    assert budget["membrane segmentation"]["network_tflop"] * 1e12 == pytest.approx(depth * plane)
    config = PickerConfig()
    stack = _flops(HeatmapUNet(config), (1, config.in_channels, 48 + 2 * config.context_margin, 48 + 2 * config.context_margin))
    assert budget["particle picking"]["network_tflop"] * 1e12 == pytest.approx(depth * stack)  # one chunk: no extra slices
    assert budget["training"]["network_tflop"] > 0
    assert all(row["network_cpu_s"] > 0 for row in budget.values())
    deeper = network_budget((2 * depth, side, side), (4, 6))
    assert deeper["training"]["network_tflop"] == pytest.approx(2 * budget["training"]["network_tflop"])


def test_totals_pay_pseudo_labels_and_training_once_and_the_rest_per_tomogram():
    rows = [{"paid_per": "data set", "wall_s": 600.0, "gpu_estimate_s": 300.0},
            {"paid_per": "data set", "wall_s": 120.0, "gpu_estimate_s": 20.0},
            {"paid_per": "tomogram", "wall_s": 420.0, "gpu_estimate_s": 30.0},
            {"paid_per": "tomogram", "wall_s": 180.0, "gpu_estimate_s": 60.0}]
    totals = dataset_totals(rows, 10)
    assert totals["wall_s"] == {"once_s": 720.0, "per_tomogram_s": 600.0, "data_set_h": round((720 + 6000) / 3600, 2)}
    assert totals["gpu_estimate_s"] == {"once_s": 320.0, "per_tomogram_s": 90.0, "data_set_h": round((320 + 900) / 3600, 2)}
