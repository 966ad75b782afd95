"""Particle evidence: dark blobs of the particle's size are pseudo-points; smaller ones, sheets and edges are not."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.blobs import (
    BlobConfig,
    blob_measure,
    blob_peaks,
    detect_blobs,
    held_out_slices,
    inside_margin,
    particle_points,
)


def _scene(seed=0, noise=0.4):
    """(volume, big, small): dark spheres of 12 voxels radius (the particle) and of 5 (a smaller complex),
    a dark sheet, in noise, 64 x 96 x 96, smeared along z as by the missing wedge."""
    depth, size = 64, 96
    z, y, x = np.mgrid[:depth, :size, :size].astype(np.float32)
    big = np.array([[25, 25, 32], [70, 30, 30], [30, 70, 26], [70, 72, 38]], dtype=np.float64)  # x, y, z
    small = np.array([[48, 48, 32], [20, 48, 40]], dtype=np.float64)
    density = np.zeros((depth, size, size), np.float32)
    for centres, radius in ((big, 12), (small, 5)):
        for cx, cy, cz in centres:
            density[(x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) / 1.3) ** 2 < radius**2] = 1.0
    density[:, :, 88:90] = 1.0  # a membrane seen edge-on
    rng = np.random.default_rng(seed)
    volume = -ndi.gaussian_filter(density, 1.0) + noise * rng.standard_normal(density.shape).astype(np.float32)
    return volume, big, small


def _matched(found, truth, radius):
    distance = np.linalg.norm(found[:, None, :] - truth[None, :, :], axis=2)
    return (distance.min(axis=0) <= radius) if len(found) else np.zeros(len(truth), bool)


def test_particle_sized_blobs_are_found_and_smaller_complexes_and_sheets_are_not():
    volume, big, small = _scene()
    points, scores, noise = detect_blobs(volume, 0, 64, voxel_size_nm=1.0, config=BlobConfig(diameter_nm=24.0))
    assert _matched(points, big, 4).all()
    assert not _matched(points, small, 6).any()
    assert not np.any(points[:, 0] > 80)  # nothing on the sheet
    assert len(points) == len(big) and np.all(scores >= BlobConfig().threshold) and noise > 0


def test_scale_selection_keeps_smaller_complexes_out_where_the_threshold_does_not():
    volume, big, small = _scene()
    radius, sigma = 12.0, 12.0 / np.sqrt(3)
    measure = blob_measure(volume, sigma)
    noise = np.median(np.abs(measure[:, ::4, ::4]))
    peaks, _ = blob_peaks(measure / noise, radius, 3.0)  # a low threshold alone lets them in ...
    assert _matched(peaks, small, 6).all()
    points, _, _ = detect_blobs(volume, 0, 64, 1.0, BlobConfig(diameter_nm=24.0, threshold=3.0))
    assert not _matched(points, small, 6).any()  # ... the particle's scale keeps them out
    assert _matched(points, big, 4).all()


def test_pseudo_points_cut_the_slab_and_held_out_points_lie_beyond_it():
    volume, big, _ = _scene()
    config = BlobConfig(diameter_nm=24.0, calibration_nm=20.0)
    result = particle_points(volume, [30, 31, 32], voxel_size_nm=1.0, config=config)
    assert result.radius_px == 12.0
    assert np.all(np.abs(result.points[:, 2] - 31) <= 13)  # every pseudo-point's particle cuts a labelled slice
    assert len(result.points) == 4  # the four particles centred at z 26-38 all cut slices 30-32
    assert set(result.calibration_slices).isdisjoint(range(18, 45))  # beyond a radius of the slab
    assert all(int(round(z)) in result.calibration_slices for z in result.calibration_points[:, 2])


def test_held_out_slices_skip_a_radius_around_the_slab_and_stop_at_the_volume():
    assert held_out_slices([10, 11], radius=3.0, calibration_depth=2, depth=100) == [5, 6, 15, 16]
    assert held_out_slices([1], radius=3.0, calibration_depth=2, depth=100) == [5, 6]


def test_points_near_a_face_are_dropped():
    points = np.array([[5.0, 50.0, 30.0], [50.0, 50.0, 30.0], [50.0, 50.0, 62.0]])
    np.testing.assert_array_equal(inside_margin(points, (64, 96, 96), 12.0), [False, True, False])
    volume, big, _ = _scene()
    edge = volume.copy()
    z, y, x = np.mgrid[:64, :96, :96]
    edge -= 1.5 * ((x - 3) ** 2 + (y - 48) ** 2 + (z - 32) ** 2 < 144)  # a particle cut by the x = 0 face
    points, _, _ = detect_blobs(edge, 0, 64, 1.0, BlobConfig(diameter_nm=24.0))
    assert not np.any(points[:, 0] < 12)


def test_a_constant_volume_has_no_blobs():
    points, scores, noise = detect_blobs(np.zeros((32, 48, 48), np.float32), 0, 32, 1.0, BlobConfig(diameter_nm=10.0))
    assert len(points) == 0 and noise == 1.0


@pytest.mark.parametrize("field, value", [("diameter_nm", 0.0), ("threshold", -1.0), ("smaller_scale", 1.0), ("calibration_nm", -5.0)])
def test_bad_settings_are_refused(field, value):
    import dataclasses

    with pytest.raises(CryoDiffSegError):
        particle_points(np.zeros((8, 16, 16), np.float32), [3], 1.0, dataclasses.replace(BlobConfig(), **{field: value}))


def test_the_blob_measure_by_row_blocks_equals_the_whole_volume():
    volume = np.random.default_rng(4).standard_normal((20, 60, 30)).astype(np.float32)
    whole = blob_measure(volume, 2.5, chunk_voxels=10**9)
    np.testing.assert_allclose(blob_measure(volume, 2.5, chunk_voxels=20 * 30 * 3), whole, atol=1e-5)  # thinnest blocks


def test_the_blob_measure_at_a_few_voxels_equals_the_whole_volumes_there():
    from cryodiffseg.pseudolabel.blobs import blob_measure_at

    volume = np.random.default_rng(5).standard_normal((30, 40, 50)).astype(np.float32)
    points = np.array([[0, 0, 0], [15, 20, 25], [29, 39, 49], [2, 38, 10]])  # corners, middle, near faces
    whole = blob_measure(volume, 1.8, chunk_voxels=10**9)
    np.testing.assert_allclose(blob_measure_at(volume, 1.8, points), whole[tuple(points.T)], atol=1e-5)


def test_blob_peaks_by_chunks_of_slices_equal_those_of_the_whole_volume():
    from cryodiffseg.picking.peaks import non_max_suppression

    measure = ndi.gaussian_filter(np.random.default_rng(6).standard_normal((90, 40, 40)), 2.0).astype(np.float32)
    noise, radius, threshold = 0.05, 5.0, 1.0
    scaled = measure / noise  # the whole volume at once: what chunking must reproduce
    peak = (scaled >= threshold) & (scaled == ndi.maximum_filter(scaled, size=5, mode="nearest"))
    points, scores = np.argwhere(peak)[:, ::-1].astype(np.float64), scaled[peak].astype(np.float64)
    kept = non_max_suppression(points, scores, radius)
    found, found_scores = blob_peaks(measure, radius, threshold, noise)
    assert len(found) > 10 and np.any(found[:, 2] >= 64)  # peaks in the third chunk of 32 slices too
    np.testing.assert_array_equal(found, points[kept])
    np.testing.assert_array_equal(found_scores, scores[kept])


def test_the_blob_measure_of_some_slices_of_an_integer_volume_equals_the_whole_float_volumes():
    volume = np.random.default_rng(7).integers(-100, 100, (24, 30, 30)).astype(np.int16)
    whole = blob_measure(volume.astype(np.float32), 2.0, chunk_voxels=10**9)
    np.testing.assert_array_equal(blob_measure(volume, 2.0, chunk_voxels=24 * 30 * 8, keep=slice(5, 19)), whole[5:19])
