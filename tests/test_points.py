import numpy as np
import pytest
from skimage.draw import disk

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.points import PointConfig, deduplicate, drop_crowded, patch_points


def labels_with_disks(disks, size=160):
    labels = np.zeros((size, size), dtype=np.int32)
    for index, ((row, col), radius) in enumerate(disks, start=1):
        labels[disk((row, col), radius, shape=labels.shape)] = index
    return labels


def test_points_near_a_membrane_are_dropped():
    membrane = np.zeros((160, 160), dtype=bool)
    membrane[:, 20] = True  # a vertical membrane at x = 20
    # Centres at x = 28 (8 px away), 30 (exactly 10 px: not more than 10) and 70 (50 px away).
    labels = labels_with_disks([((20, 28), 5), ((80, 30), 5), ((140, 70), 5)])
    points = patch_points(labels, membrane, voxel_size_nm=1.0)
    np.testing.assert_allclose(points, [[70.0, 140.0]])  # x, y


def test_without_membrane_every_round_instance_counts():
    labels = labels_with_disks([((20, 28), 5), ((80, 30), 5), ((140, 70), 5)])
    points = patch_points(labels, np.zeros(labels.shape, dtype=bool), voxel_size_nm=1.0)
    np.testing.assert_allclose(points, [[28.0, 20.0], [30.0, 80.0], [70.0, 140.0]])


def test_area_threshold_scales_with_voxel_size():
    labels = labels_with_disks([((20, 20), 3), ((20, 80), 4)])  # 25 px and 45 px, both round
    no_membrane = np.zeros(labels.shape, dtype=bool)
    np.testing.assert_allclose(patch_points(labels, no_membrane, voxel_size_nm=1.0), [[80.0, 20.0]])  # >= 30 px
    assert len(patch_points(labels, no_membrane, voxel_size_nm=0.5)) == 0  # >= 60 px


def test_elongated_instances_are_not_points():
    labels = np.zeros((64, 64), dtype=np.int32)
    labels[10:16, 10:40] = 1
    assert len(patch_points(labels, np.zeros(labels.shape, dtype=bool), voxel_size_nm=1.0)) == 0


def test_crowded_pair_of_a_patch_is_dropped_by_the_crowding_filter():
    labels = labels_with_disks([((20, 20), 5), ((20, 40), 5), ((120, 120), 5)])
    candidates = patch_points(labels, np.zeros(labels.shape, dtype=bool), voxel_size_nm=1.0)
    assert len(candidates) == 3
    np.testing.assert_allclose(drop_crowded(candidates, PointConfig().crowding_distance), [[120.0, 120.0]])


def test_drop_crowded_removes_both_points_of_close_pairs_only():
    points = np.array([[0.0, 0.0], [20.0, 0.0], [100.0, 100.0], [132.0, 100.0], [300.0, 300.0], [332.5, 300.0]])
    # 20 px apart: both go; exactly 32 px apart: both go, as in the reference (<= 32); 32.5 px apart: both stay.
    np.testing.assert_array_equal(drop_crowded(points, 32.0), points[4:])
    assert drop_crowded(np.zeros((0, 2)), 32.0).shape == (0, 2)
    np.testing.assert_array_equal(drop_crowded(points[:1], 32.0), points[:1])


def test_centre_mode_keeps_the_middle_of_a_chain_along_z():
    # one particle seen on slices 30-38 (a chain longer than the radius), and a separate one
    chain = np.array([[50.0, 60.0, z] for z in range(30, 39)])
    other = np.array([[120.0, 60.0, 31.0]])
    kept = deduplicate(np.vstack([chain, other]), 3, mode="centre")
    np.testing.assert_array_equal(kept, [[50.0, 60.0, 34.0], [120.0, 60.0, 31.0]])
    # the reference keeps the first slice, and splits the long chain in two
    first = deduplicate(np.vstack([chain, other]), 3, mode="first")
    assert [p[2] for p in first if p[0] == 50.0] == [30.0, 34.0, 38.0]
    assert deduplicate(np.zeros((0, 3)), 3, mode="centre").shape == (0, 3)
    with pytest.raises(CryoDiffSegError, match="Unknown de-duplication"):
        deduplicate(chain, 3, mode="median")


def test_deduplicate_is_greedy_in_input_order():
    points = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    # (0,0,0) takes (2,0,0) (at the radius); (4,0,0) is 4 away from the kept point and stays.
    np.testing.assert_array_equal(deduplicate(points, 2), points[[0, 2, 3]])
    # Starting from (2,0,0) instead takes both of its neighbours.
    np.testing.assert_array_equal(deduplicate(points[[1, 0, 2, 3]], 2), points[[1, 3]])
    assert deduplicate(np.zeros((0, 3)), 2).shape == (0, 3)


@pytest.mark.parametrize("voxel_size_nm, radius", [(1.0, 15), (0.7, 22), (1.5, 10), (2.0, 8), (0.3, 50)])
def test_dedup_radius_is_ceil_of_15_nm(voxel_size_nm, radius):
    assert PointConfig().dedup_radius(voxel_size_nm) == radius


def test_empty_patch_gives_no_points():
    points = patch_points(np.zeros((64, 64), dtype=np.int32), np.zeros((64, 64), dtype=bool), voxel_size_nm=1.0)
    assert points.shape == (0, 2)
