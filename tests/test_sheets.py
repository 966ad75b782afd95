"""Sheet evidence: dark sheets through z are membranes; particles and in-plane filaments are not."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.sheets import (
    SheetConfig,
    attention_weights,
    closed_rings,
    hessian_eigenvalues,
    long_pieces,
    membrane_sheets,
    plate_measure,
    sheet_depth,
    slice_windows,
)


def _scene(depth=40, size=96, noise=0.5, seed=0):
    """(volume, sheet, blob, ribbon, vesicle): a dark arc through every slice (a membrane seen edge-on), a
    dark particle, a dark filament lying in the slice plane that the missing wedge smears over a few slices,
    and a small vesicle whose wall turns away from the slice plane within fewer slices than a membrane's."""
    z, y, x = np.mgrid[:depth, :size, :size].astype(np.float32)
    sheet = np.abs(np.hypot(y - 48, x + 40) - 80) < 1.5
    blob = (z - depth / 2) ** 2 / 4 + (y - 50) ** 2 + (x - 80) ** 2 < 25  # a particle, elongated along z
    ribbon = (np.abs(y - 20) < 1.5) & (x > 50) & (x < 90) & (np.abs(z - depth / 2) < 7)
    vesicle = np.abs(np.sqrt((z - depth / 2) ** 2 + (y - 78) ** 2 + (x - 66) ** 2) - 9) < 1.2
    density = (sheet | blob | ribbon | vesicle).astype(np.float32)
    rng = np.random.default_rng(seed)
    volume = -ndi.gaussian_filter(density, (1.5, 0.7, 0.7)) + noise * rng.standard_normal(density.shape).astype(np.float32)
    return volume, sheet, blob, ribbon, vesicle


def test_chunked_hessian_equals_the_whole_volume_and_scikit_image():
    volume = np.random.default_rng(1).standard_normal((24, 48, 40)).astype(np.float32)
    whole = hessian_eigenvalues(volume, 2.0, chunk_voxels=10**9)
    chunked = hessian_eigenvalues(volume, 2.0, chunk_voxels=24 * 40 * 20)  # blocks of a few rows
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    # scikit-image composes two first derivatives; away from the borders the two agree.
    reference = hessian_matrix_eigvals(hessian_matrix(volume.astype(np.float64), 2.0, use_gaussian_derivatives=True))
    inside = np.s_[:, 8:-8, 8:-8, 8:-8]
    np.testing.assert_allclose(whole[inside], reference[inside], atol=2e-3 * np.abs(reference).max())
    assert np.all(whole[0] >= whole[1]) and np.all(whole[1] >= whole[2])


def test_plate_measure_prefers_a_sheet_to_a_filament_and_a_particle():
    z, y, x = np.mgrid[:33, :33, :33]
    shapes = {
        "sheet": np.abs(x - 16) < 1.5,
        "filament": (np.abs(x - 16) < 1.5) & (np.abs(y - 16) < 1.5),
        "particle": (x - 16) ** 2 + (y - 16) ** 2 + (z - 16) ** 2 < 6,
    }
    centre = {}
    for name, shape in shapes.items():
        volume = -ndi.gaussian_filter(shape.astype(np.float32), 0.7)
        centre[name] = plate_measure(hessian_eigenvalues(volume, 2.0), 0.3)[16, 16, 16]
    assert centre["sheet"] > 10 * centre["filament"]
    assert centre["sheet"] > 10 * centre["particle"]
    bright = plate_measure(hessian_eigenvalues(-volume, 2.0), 0.3)  # a bright particle is no dark sheet either
    assert bright[16, 16, 16] == 0


def test_depth_follows_a_tilted_sheet_and_stops_where_it_jumps():
    mask = np.zeros((10, 5, 30), dtype=bool)
    for z in range(10):
        mask[z, :, 5 + z] = True  # shifts one pixel per slice: one continuous sheet
    assert sheet_depth(mask)[mask].min() == 10
    steep = np.zeros((10, 5, 30), dtype=bool)
    for z in range(10):
        steep[z, :, 2 * z] = True  # two pixels per slice: every slice on its own
    assert sheet_depth(steep)[steep].max() == 1


def test_long_pieces_keeps_lines_and_drops_dots():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5, 2:38] = True
    mask[20:23, 20:23] = True
    kept = long_pieces(mask, 20)
    assert kept[5, 2:38].all() and not kept[20:23, 20:23].any()


def test_windows_cover_each_slab_and_merge_when_they_meet():
    assert slice_windows([10, 11, 12], 5, 100) == [(5, 18)]
    assert slice_windows([3, 60], 5, 64) == [(0, 9), (55, 64)]
    assert slice_windows([10, 18], 5, 100) == [(5, 24)]


def test_membrane_sheet_kept_particle_and_in_plane_filament_dropped():
    volume, sheet, blob, ribbon, vesicle = _scene()
    slab = [18, 19, 20, 21]
    evidence = membrane_sheets(volume, slab, voxel_size_nm=1.0)
    assert sorted(evidence.masks) == slab
    for z in slab:
        mask = evidence.masks[z]
        near_sheet = ndi.binary_dilation(sheet[z] | vesicle[z], iterations=3)
        assert (mask & sheet[z]).sum() / sheet[z].sum() > 0.8  # the membrane is found ...
        assert (mask & vesicle[z]).sum() / vesicle[z].sum() > 0.5  # ... with the small vesicle ...
        assert (mask & ~near_sheet).sum() < 0.1 * mask.sum()  # ... and little else
        assert not (mask & ndi.binary_dilation(blob[z] | ribbon[z], iterations=2)).any()
    assert evidence.depth_px == 30 and evidence.sigma_px == pytest.approx(3.0)


def test_lengths_are_physical_a_coarser_voxel_gives_the_same_decisions():
    volume, sheet, blob, ribbon, vesicle = _scene()
    coarse = volume[::2, ::2, ::2]  # the same scene at 2 nm per voxel
    evidence = membrane_sheets(coarse, [9, 10], voxel_size_nm=2.0)
    assert evidence.depth_px == 15 and evidence.sigma_px == pytest.approx(1.5)
    for z in (9, 10):
        mask = evidence.masks[z]
        assert (mask & sheet[2 * z, ::2, ::2]).sum() / sheet[2 * z, ::2, ::2].sum() > 0.6
        assert not (mask & ndi.binary_dilation((ribbon | blob)[2 * z, ::2, ::2], iterations=1)).any()


def test_the_small_vesicle_is_kept_as_a_ring_not_for_its_depth():
    volume, sheet, blob, ribbon, vesicle = _scene()
    without_rings = membrane_sheets(volume, [20], voxel_size_nm=1.0, config=SheetConfig(min_lumen_nm=0))
    assert not (without_rings.masks[20] & vesicle[20]).any()


def test_closed_rings_need_a_lighter_lumen():
    y, x = np.mgrid[:40, :40]
    ring = np.abs(np.hypot(y - 20, x - 20) - 8) < 1.5
    lumen_light = np.where(ring, -1.0, 0.0)
    lumen_dark = np.where(np.hypot(y - 20, x - 20) < 9.5, -1.0, 0.0) + np.where(ring, 0.3, 0.0)  # a particle's rim
    assert closed_rings(ring, lumen_light, 20).sum() == ring.sum()
    assert not closed_rings(ring, lumen_dark, 20).any()
    assert not closed_rings(ring, lumen_light, 400).any()  # lumen smaller than asked


def test_without_the_depth_test_the_in_plane_filament_passes():
    """The depth test, not the plate measure, is what removes the smeared filament."""
    volume, sheet, blob, ribbon, vesicle = _scene()
    evidence = membrane_sheets(volume, [20], voxel_size_nm=1.0, config=SheetConfig(min_depth_nm=0))
    assert (evidence.masks[20] & ribbon[20]).sum() > 0.3 * ribbon[20].sum()


def test_weights_scale_the_evidence_of_their_slice():
    volume, sheet, _, _, _ = _scene()
    plain = membrane_sheets(volume, [20], voxel_size_nm=1.0)
    halved = membrane_sheets(volume, [20], voxel_size_nm=1.0, weights={20: np.full(volume.shape[1:], 0.5, np.float32)})
    np.testing.assert_allclose(halved.response[20], 0.5 * plain.response[20], rtol=1e-6)
    assert halved.masks[20].sum() < plain.masks[20].sum()


def test_attention_weights_favour_dark_canvas():
    canvas = np.full((8, 8), 255, dtype=np.uint8)
    canvas[:, :4] = 0
    weights = attention_weights(canvas, 0.5)
    assert weights[0, 0] == pytest.approx(1.25) and weights[0, 7] == pytest.approx(0.75)


def test_a_constant_volume_gives_empty_masks():
    evidence = membrane_sheets(np.zeros((40, 32, 32), np.float32), [20], voxel_size_nm=1.0)
    assert not evidence.masks[20].any()


@pytest.mark.parametrize("field, value", [("scale_nm", 0.0), ("plate_ratio", -1.0), ("low", 5.0), ("attention_weight", 2.0)])
def test_bad_settings_are_refused(field, value):
    import dataclasses

    with pytest.raises(CryoDiffSegError):
        membrane_sheets(np.zeros((4, 8, 8), np.float32), [1], 1.0, dataclasses.replace(SheetConfig(), **{field: value}))
