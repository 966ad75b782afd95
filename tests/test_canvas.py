import numpy as np
import pytest
from skimage.draw import disk
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cryodiffseg.pseudolabel.canvas import (
    CanvasConfig,
    build_canvas,
    count_contours,
    diversity,
    minmax_scale,
    polarity_fix,
)

# Bright disks on a mid-grey background, one black pixel fixing the minimum: after min-max the background
# is 127.5 (> 100, so no map is inverted) and Otsu keeps exactly the disks, one contour each.
BIG = [((14, 14), 6), ((14, 48), 6), ((48, 14), 6), ((48, 48), 6)]
MID_SMALL = [(c, 2) for c in [(31, 5), (31, 58), (5, 31), (58, 31), (24, 31), (38, 31), (31, 24), (31, 38)]]
CORNERS = [((5, 5), 3), ((5, 58), 3), ((58, 5), 3), ((58, 58), 3), ((31, 31), 3), ((22, 22), 2), ((40, 40), 2)]


def blob_map(spots, size=64):
    image = np.full((size, size), 0.5)
    image[0, 0] = 0.0
    for centre, radius in spots:
        image[disk(centre, radius, shape=image.shape)] = 1.0
    return image


def processed(image):
    return polarity_fix(minmax_scale(image))


def noise_maps(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((64, 64)) for _ in range(count)]


def test_polarity_fix_inverts_exactly_below_forty_percent_bright():
    image = np.zeros(100, dtype=np.uint8)
    image[:39] = 200
    image[39:45] = 100  # exactly 100 does not count as exceeding it
    np.testing.assert_array_equal(polarity_fix(image), 255 - image)
    assert polarity_fix(image).dtype == np.uint8
    image[39] = 101  # now 40 % exceed 100
    np.testing.assert_array_equal(polarity_fix(image), image)


def test_diversity_matches_a_loop_over_windows():
    rng = np.random.default_rng(3)
    image = rng.random((10, 10)) * 255
    window_stds = [image[y : y + 4, x : x + 4].std() for y in range(0, 7, 2) for x in range(0, 7, 2)]
    assert diversity(image) == pytest.approx(np.std(window_stds))
    assert diversity(np.full((8, 8), 42.0)) == 0.0


def test_diversity_small_known_value():
    # 6x6: windows at offsets 0 and 2; only the bottom-right window sees the single bright pixel.
    image = np.zeros((6, 6))
    image[5, 5] = 16.0
    bright_window_std = np.sqrt(16.0**2 / 16 - (16.0 / 16) ** 2)  # sqrt(15)
    assert diversity(image) == pytest.approx(np.std([0, 0, 0, bright_window_std]))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_contour_count_is_number_of_blobs(k):
    image = np.zeros((64, 64), dtype=np.uint8)
    for i in range(k):
        image[disk((8 + (i // 4) * 20, 8 + (i % 4) * 15), 4, shape=image.shape)] = 200
    assert count_contours(image) == k
    assert count_contours(image.astype(np.float64) / 7.0) == k  # float input is stretched first


def test_base_skips_fragmented_maps_and_takes_the_most_diverse():
    fragmented = blob_map(BIG + MID_SMALL)  # 12 contours, the most diverse map
    two = blob_map(BIG[:2])
    four = blob_map(BIG)
    assert count_contours(processed(fragmented)) == 12
    assert diversity(processed(fragmented)) > diversity(processed(four)) > diversity(processed(two))
    result = build_canvas(np.stack([fragmented, two, four] + noise_maps(9)))
    assert result.base_index == 2


def test_merge_order_follows_psnr_and_stops_when_nothing_is_admissible():
    base, first = blob_map(BIG), blob_map(BIG + MID_SMALL)
    second, third = blob_map(BIG + MID_SMALL + [((40, 22), 2)]), blob_map(BIG + CORNERS)
    # All three candidates have > 10 contours (none can be the base) and resemble the base; the fewer the
    # extra disks, the higher the PSNR, so they are tried in the order first, second, third.
    maps = [processed(m) for m in (base, first, second, third)]
    assert [count_contours(m) for m in maps] == [4, 12, 13, 11]
    psnr = [peak_signal_noise_ratio(maps[0], m, data_range=255) for m in maps[1:]]
    assert psnr[0] > psnr[1] > psnr[2]
    stack = np.stack([third, base, first, second] + noise_maps(8))
    result = build_canvas(stack)
    assert result.base_index == 1
    # "third" is admissible until the end, where merging it would make the canvas less diverse.
    assert result.merged_indices == [2, 3]
    assert build_canvas(stack, CanvasConfig(max_merge_rounds=1)).merged_indices == [2]


def test_best_psnr_candidate_vetoed_by_contour_rule():
    base = blob_map(BIG)
    many_small = blob_map(BIG + MID_SMALL + [((5, 5), 2), ((5, 58), 2), ((58, 5), 2), ((58, 58), 2)])
    fewer_large = blob_map(BIG + [(c, 4) for c, _ in MID_SMALL])
    maps = [processed(m) for m in (base, many_small, fewer_large)]
    psnr = [peak_signal_noise_ratio(maps[0], m, data_range=255) for m in maps[1:]]
    assert psnr[0] > psnr[1]
    # The better candidate passes every other rule; only the contour count of the merged map vetoes it.
    assert structural_similarity(maps[0], maps[1], data_range=255) > 0.35
    assert diversity(minmax_scale(maps[0] + maps[1])) >= diversity(maps[0])
    assert count_contours(minmax_scale(maps[0] + maps[1])) > 15
    assert count_contours(minmax_scale(maps[0] + maps[2])) <= 15
    result = build_canvas(np.stack([base, many_small, fewer_large] + noise_maps(9)))
    assert (result.base_index, result.merged_indices) == (0, [2])


def test_no_canvas_when_every_map_is_fragmented():
    fragmented = blob_map(BIG + MID_SMALL)
    assert build_canvas(np.stack([fragmented] * 12)) is None


def test_output_is_512_uint8_with_canvas_polarity():
    result = build_canvas(np.stack([blob_map(BIG)] + noise_maps(11)))
    assert result.image.shape == (512, 512) and result.image.dtype == np.uint8
    assert np.count_nonzero(result.image > 100) / result.image.size >= 0.4
    assert result.merged_indices == []  # noise resembles nothing


def test_contours_are_counted_on_the_truncated_map_as_in_the_reference():
    # A bar at 255 and four small blobs at 125.6: rounded to 126 they rise above Otsu's threshold and count
    # as four more regions; truncated to 125 (the reference's uint8 conversion) they sit on it and do not.
    image = np.zeros((32, 32))
    image[2:8, 2:30] = 255.0
    for y, x in ((12, 4), (12, 10), (20, 20), (28, 28)):
        image[y : y + 2, x : x + 2] = 125.6
    assert count_contours(image) == 1
    assert count_contours(np.round(image).astype(np.uint8)) == 5
