import json

import numpy as np
import pytest

from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.evaluation import (
    evaluate_mask,
    evaluate_points,
    format_table,
    match_points,
    picking_metrics,
    read_points,
    segmentation_metrics,
)
from cryodiffseg.tomoio import write_mrc, write_text


def masks_of_two_slices():
    """Slice 0: pred 4 voxels, truth 2 of them + 2 others. Slice 1: both empty. Slice 2: pred only."""
    pred = np.zeros((3, 4, 4), dtype=np.uint8)
    truth = np.zeros((3, 4, 4), dtype=np.uint8)
    pred[0, 0, :4] = 1
    truth[0, 0, :2] = 1
    truth[0, 1, :2] = 1
    pred[2, 3, 3] = 1
    return pred, truth


def test_segmentation_metrics_by_hand():
    pred, truth = masks_of_two_slices()
    m = segmentation_metrics(pred, truth)
    # tp 2, fp 2 + 1, fn 2.
    assert (m["true_positive_voxels"], m["false_positive_voxels"], m["false_negative_voxels"]) == (2, 3, 2)
    assert m["dice"] == pytest.approx(4 / 9)
    assert m["iou"] == pytest.approx(2 / 7)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(2 / 4)
    # Per slice: 4/8 = 0.5, empty/empty = 1, pred-only = 0.
    assert m["per_slice_dice"] == {0: 0.5, 1: 1.0, 2: 0.0}
    assert m["per_slice_mean_dice"] == pytest.approx(0.5)
    assert m["slices_evaluated"] == 3


def test_segmentation_metrics_restricted_to_slices():
    pred, truth = masks_of_two_slices()
    m = segmentation_metrics(pred, truth, slices=[1, 0, 1])
    assert m["slices_evaluated"] == 2
    assert m["dice"] == pytest.approx(0.5)
    assert m["per_slice_mean_dice"] == pytest.approx(0.75)
    with pytest.raises(CryoDiffSegError, match="0-2"):
        segmentation_metrics(pred, truth, slices=[3])
    with pytest.raises(CryoDiffSegError, match="No slices"):
        segmentation_metrics(pred, truth, slices=[])


def test_empty_masks():
    empty = np.zeros((2, 3, 3), dtype=np.uint8)
    full = np.ones((2, 3, 3), dtype=np.uint8)
    both = segmentation_metrics(empty, empty)
    assert both["dice"] == both["iou"] == both["precision"] == both["recall"] == both["per_slice_mean_dice"] == 1.0
    missed = segmentation_metrics(empty, full)
    assert missed["dice"] == missed["iou"] == missed["recall"] == missed["per_slice_mean_dice"] == 0.0
    assert missed["precision"] == 1.0  # nothing predicted, nothing wrong
    spurious = segmentation_metrics(full, empty)
    assert spurious["dice"] == spurious["precision"] == 0.0 and spurious["recall"] == 1.0


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(CryoDiffSegError, match="differ in shape"):
        segmentation_metrics(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))


def test_picking_metrics_by_hand():
    truth = np.array([[0, 0, 0], [10, 0, 0], [50, 50, 50]], dtype=float)
    pred = np.array([[1, 0, 0], [0, 1, 0], [11, 0, 0], [80, 80, 80]], dtype=float)
    m = picking_metrics(pred, truth, radius=2.0)
    # Two predictions at truth 0: one TP, one FP; (11,0,0) matches truth 1; (80,80,80) FP; truth 2 missed.
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (2, 2, 1)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["mean_matched_distance"] == pytest.approx(1.0)


def test_matching_is_optimal_not_greedy():
    # Greedy by distance would pair prediction 0 with truth 1 (0.9 apart) and leave prediction 1 alone.
    truth = np.array([[0, 0, 0], [2, 0, 0]], dtype=float)
    pred = np.array([[1.1, 0, 0], [3.5, 0, 0]], dtype=float)
    pairs = match_points(pred, truth, radius=1.6)
    assert sorted(map(tuple, pairs)) == [(0, 0), (1, 1)]
    assert picking_metrics(pred, truth, 1.6)["f1"] == 1.0


def test_radius_boundary_is_inclusive():
    truth = np.array([[0, 0, 0]], dtype=float)
    at_radius = np.array([[3, 4, 0]], dtype=float)  # exactly 5 away
    assert picking_metrics(at_radius, truth, radius=5.0)["true_positives"] == 1
    assert picking_metrics(at_radius, truth, radius=np.nextafter(5.0, 0))["true_positives"] == 0


def test_empty_point_sets():
    some = np.array([[1.0, 2.0, 3.0]])
    none = np.zeros((0, 3))
    both = picking_metrics(none, none, 3)
    assert both["precision"] == both["recall"] == both["f1"] == 1.0
    assert both["mean_matched_distance"] is None
    no_pred = picking_metrics(none, some, 3)
    assert (no_pred["precision"], no_pred["recall"], no_pred["f1"], no_pred["false_negatives"]) == (1.0, 0.0, 0.0, 1)
    no_truth = picking_metrics(some, [], 3)
    assert (no_truth["precision"], no_truth["recall"], no_truth["f1"], no_truth["false_positives"]) == (0.0, 1.0, 0.0, 1)


def test_many_points_match_in_groups():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 500, (400, 3))
    pred = np.concatenate([truth + rng.normal(0, 0.5, truth.shape), rng.uniform(0, 500, (100, 3))])
    m = picking_metrics(pred, truth, radius=3.0)
    assert m["true_positives"] >= 395 and m["predicted"] == 500
    pairs = match_points(pred, truth, 3.0)
    assert len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])) == len(pairs)  # one to one


def test_evaluate_files_and_table(tmp_path):
    pred, truth = masks_of_two_slices()
    write_mrc(tmp_path / "pred.mrc", pred.astype(np.int8), 10.0)
    write_mrc(tmp_path / "truth.mrc", truth.astype(np.int8), 10.0)
    result = evaluate_mask(tmp_path / "pred.mrc", tmp_path / "truth.mrc", slices=[0])
    assert result["dice"] == pytest.approx(0.5) and result["shape_zyx"] == [3, 4, 4]
    json.dumps(result)
    write_mrc(tmp_path / "other.mrc", np.zeros((3, 4, 5), np.int8), 10.0)
    with pytest.raises(CryoDiffSegError, match="differ in shape"):
        evaluate_mask(tmp_path / "pred.mrc", tmp_path / "other.mrc")
    with pytest.raises(CryoDiffSegError, match="not found"):
        evaluate_mask(tmp_path / "missing.mrc", tmp_path / "truth.mrc")

    write_text(tmp_path / "picks.csv", "x,y,z,score\n1,0,0,0.9\n40,0,0,0.5\n")
    write_text(tmp_path / "truth.csv", "x,y,z\n0.00,0.00,0\n\n")  # the pseudo-point layout, blank line at the end
    points = evaluate_points(tmp_path / "picks.csv", tmp_path / "truth.csv", radius=2)
    assert (points["true_positives"], points["false_positives"], points["f1"]) == (1, 1, pytest.approx(2 / 3))
    table = format_table(points)
    assert "f1" in table and "0.6667" in table and "mean_matched_distance  1.0000" in table
    assert "per_slice_dice" not in format_table(result)
    json.dumps(points)


def test_bad_point_files(tmp_path):
    write_text(tmp_path / "noz.csv", "x,y\n1,2\n")
    with pytest.raises(CryoDiffSegError, match="no z column"):
        read_points(tmp_path / "noz.csv")
    write_text(tmp_path / "text.csv", "x,y,z\n1,two,3\n")
    with pytest.raises(CryoDiffSegError, match="line 2"):
        read_points(tmp_path / "text.csv")
    write_text(tmp_path / "empty.csv", "")
    with pytest.raises(CryoDiffSegError, match="empty"):
        read_points(tmp_path / "empty.csv")
    write_text(tmp_path / "header_only.csv", " X , Y , Z \n")
    assert read_points(tmp_path / "header_only.csv").shape == (0, 3)
