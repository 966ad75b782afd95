import numpy as np

from cryodiffseg.pseudolabel.zconsistency import ZConsistencyConfig, correct_z


def random_canvas(seed, size=32):
    """Random uint8 canvas spanning exactly 0..255, so the final min-max stretch is the identity."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size)).astype(np.uint8)
    image[0, 0], image[0, 1] = 0, 255
    return image


def test_weighted_average_of_unrelated_neighbours():
    previous, current, following = random_canvas(1), random_canvas(2), random_canvas(3)
    previous[5, 5], current[5, 5], following[5, 5] = 40, 100, 200
    result = correct_z({0: previous, 1: current, 2: following})
    corrected = result.canvases[1]
    assert corrected.dtype == np.uint8 and result.replaced == []
    assert corrected[5, 5] == 110  # 0.5 * 100 + 0.25 * 40 + 0.25 * 200
    expected = 0.5 * current.astype(float) + 0.25 * previous + 0.25 * following
    np.testing.assert_array_equal(corrected, np.round(expected).astype(np.uint8))


def test_outlier_between_agreeing_neighbours_is_replaced_by_their_mean():
    neighbour, outlier = random_canvas(4), random_canvas(5)
    result = correct_z({7: neighbour, 8: outlier, 9: neighbour.copy()})
    assert result.replaced == [8]
    np.testing.assert_array_equal(result.canvases[8], neighbour)
    # The same outlier is only smoothed when the rule is switched off by an unreachable agreement level.
    smoothed = correct_z({7: neighbour, 8: outlier, 9: neighbour}, ZConsistencyConfig(neighbour_agreement=1.0))
    assert smoothed.replaced == [] and not np.array_equal(smoothed.canvases[8], neighbour)


def test_end_slices_and_gaps_are_left_alone():
    canvases = {z: random_canvas(10 + z) for z in (0, 1, 3, 4, 6)}
    canvases[5] = None
    result = correct_z(canvases)
    # 0 and 6 are ends, 1 misses slice 2, 3 misses slice 2, 4 has no canvas at 5, 5 has none itself.
    for z in (0, 1, 3, 4, 6):
        assert result.canvases[z] is canvases[z]
    assert result.canvases[5] is None
    assert result.replaced == []


def test_neighbours_are_the_uncorrected_canvases():
    canvases = {z: random_canvas(20 + z) for z in range(4)}
    result = correct_z(canvases)
    expected = 0.5 * canvases[2].astype(float) + 0.25 * canvases[1] + 0.25 * canvases[3]
    np.testing.assert_array_equal(result.canvases[2], np.round(expected).astype(np.uint8))
    assert result.canvases[0] is canvases[0] and result.canvases[3] is canvases[3]


def test_result_unpacks_as_canvases_and_replaced():
    canvases, replaced = correct_z({0: random_canvas(1), 1: None})
    assert set(canvases) == {0, 1} and canvases[1] is None and replaced == []
