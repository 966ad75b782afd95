"""The picks' average: true particle centres average to a centred particle, random positions to noise."""

import numpy as np
import pytest

from cryodiffseg.picking.average import (
    average_quality,
    box_corners,
    centre_contrast,
    default_box,
    extract_boxes,
    fourier_shell_correlation,
    random_positions,
)
from cryodiffseg.synthetic import generate_phantom, scaled_config


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(scaled_config((64, 192, 192), seed=3, snr=0.3, crowding=2.0))


def test_true_centres_beat_random_positions_on_both_figures(phantom):
    box, radius = default_box(25.0), 12.5
    truth = average_quality(phantom.tomogram, phantom.particles, box, radius)
    random = average_quality(phantom.tomogram, random_positions(phantom.tomogram.shape, len(phantom.particles), box), box, radius)
    assert truth.boxes >= 6
    assert truth.centre_contrast > 0.8 and abs(random.centre_contrast) < 0.4
    assert truth.fsc_low > random.fsc_low + 0.3
    assert truth.average.shape == (box,) * 3


def test_boxes_are_cut_where_relion_cuts_them_and_skipped_at_the_border():
    volume = np.arange(20 * 20 * 20, dtype=np.float32).reshape(20, 20, 20)
    points = np.array([[10.7, 9.2, 10.5], [1.0, 10.0, 10.0]])  # x, y, z; the second box leaves the volume
    np.testing.assert_array_equal(box_corners(points, 6), [[7, 6, 7], [7, 7, -2]])  # z, y, x = floor - box / 2
    boxes = extract_boxes(volume, points, 6)
    assert boxes.shape == (1, 6, 6, 6)
    np.testing.assert_array_equal(boxes[0], volume[7:13, 6:12, 7:13])


def test_fsc_of_identical_maps_is_one_and_of_independent_noise_near_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 32, 32))
    np.testing.assert_allclose(fourier_shell_correlation(a, a)[1:], 1.0)
    assert np.abs(fourier_shell_correlation(a, rng.standard_normal((32, 32, 32)))[2:].mean()) < 0.05


def test_centre_contrast_is_positive_for_a_dark_centre_only():
    grid = np.indices((24, 24, 24)) - 12
    distance = np.sqrt((grid**2).sum(axis=0))
    dark = np.where(distance < 6, -1.0, 0.0) + 0.1 * np.random.default_rng(1).standard_normal((24, 24, 24))
    assert centre_contrast(dark, 8) > 3
    assert centre_contrast(-dark, 8) < -3


def test_fewer_than_two_boxes_give_no_average():
    assert average_quality(np.zeros((10, 10, 10), np.float32), np.array([[5.0, 5.0, 5.0]]), 4, 2) is None
