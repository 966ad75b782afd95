"""The picker's score threshold, chosen per trained model on held-out points instead of a fixed 0.5.

A heatmap's scores depend on how long and on what the picker trained, so no fixed threshold suits every
model. The pseudo-label stage also finds particles on slices beyond the slab that no model trains on; after
training, the picker scores those slices and the threshold is the one whose picks agree best (F1, one-to-one
within a particle radius) with those held-out points. A pick on a held-out slice may also be a particle
centred just outside them (in the slab's own reach): it counts as right when it matches any known point, and
recall is taken over the held-out points alone. The threshold chosen is the one whose neighbourhood
(+-``SMOOTHING`` in score) has the best mean F1, not the single best F1, which often sits on the edge of a
cliff: a threshold a little off must still work, and the picker scores the particles of tomograms it never saw
a little lower than those of the one it trained on. Ties go to the middle of the tied range.
"""

import logging
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..evaluation import match_points
from .data import PseudoLabelSource
from .peaks import local_maxima, non_max_suppression
from .volume import PickerVolume

log = logging.getLogger("cryodiffseg")

FALLBACK_THRESHOLD = 0.5  # pickers without enough held-out points to calibrate on, and older pickers
MIN_CALIBRATION_POINTS = 3
_CANDIDATE_FLOOR = 0.05  # heatmap maxima below this never count as picks
_STEP = 0.01
SMOOTHING = 0.1  # half-width of the score window whose mean F1 rates a threshold


@dataclass
class Calibration:
    threshold: float
    method: str  # "held-out points" or why the fallback was used
    points: int = 0  # held-out points
    candidates: int = 0  # heatmap maxima scored on the held-out slices
    f1: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None

    def to_record(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def choose_threshold(scores: np.ndarray, picks_xyz: np.ndarray, truth_xyz: np.ndarray, radius: float,
                     also_known: Optional[np.ndarray] = None) -> Calibration:
    """The threshold in [floor, 1) maximising F1 of the picks scoring at least it against ``truth_xyz``;
    picks matching ``also_known`` points are right without adding to recall."""
    known = truth_xyz if also_known is None or not len(also_known) else np.concatenate([truth_xyz, also_known])
    thresholds = np.arange(_CANDIDATE_FLOOR, 1.0, _STEP)
    results = []
    for threshold in thresholds:
        picked = picks_xyz[scores >= threshold]
        pairs = match_points(picked, known, radius)
        found = int(np.sum(pairs[:, 1] < len(truth_xyz))) if len(pairs) else 0
        precision = len(pairs) / len(picked) if len(picked) else 1.0
        recall = found / len(truth_xyz)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results.append((f1, precision, recall))
    f1 = np.array([r[0] for r in results])
    half = int(round(SMOOTHING / _STEP))
    padded = np.pad(f1, half, mode="edge")
    rating = np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")
    best = np.flatnonzero(rating >= rating.max() - 1e-9)
    # The middle of the longest run of tied best thresholds.
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    run = max(runs, key=len)
    index = int(run[len(run) // 2])
    chosen = results[index]
    return Calibration(float(round(thresholds[index], 2)), "held-out points", len(truth_xyz), len(picks_xyz), *map(float, chosen))


def calibrate_threshold(sources: Sequence[PseudoLabelSource], radius: float,
                        score_slices: Callable[[PickerVolume, Tuple[int, int]], np.ndarray]) -> Calibration:
    """Score the held-out slices of every source (``score_slices(volume, (low, high))`` -> heatmap of
    slices low..high-1) and choose the threshold."""
    truth, known, picks, scores = [], [], [], []
    for source in sources:
        if not len(source.calibration_slices) or not len(source.calibration_xyz):
            continue
        for first, last in _runs(source.calibration_slices):
            heatmap = score_slices(source.volume, (max(0, first - 1), min(source.volume.shape[0], last + 2)))
            offset = max(0, first - 1)
            found, found_scores = local_maxima(heatmap, _CANDIDATE_FLOOR)
            found[:, 2] += offset
            inside = (found[:, 2] >= first) & (found[:, 2] <= last)
            picks.append(found[inside])
            scores.append(found_scores[inside])
        truth.append(source.calibration_xyz)
        known.append(source.points_xyz)
    total = sum(len(t) for t in truth)
    if total < MIN_CALIBRATION_POINTS:
        why = f"fixed {FALLBACK_THRESHOLD}: {total} held-out point(s), at least {MIN_CALIBRATION_POINTS} are needed to calibrate"
        log.warning("Picker threshold %s", why)
        return Calibration(FALLBACK_THRESHOLD, why, total)
    picks, scores = np.concatenate(picks), np.concatenate(scores)
    kept = non_max_suppression(picks, scores, radius)
    calibration = choose_threshold(scores[kept], picks[kept], np.concatenate(truth), radius, np.concatenate(known))
    log.info("Picker threshold %.2f calibrated on %d held-out points (F1 %.2f, precision %.2f, recall %.2f there)",
             calibration.threshold, calibration.points, calibration.f1, calibration.precision, calibration.recall)
    return calibration


def _runs(slices: Sequence[int]) -> List[tuple]:
    """(first, last) of each run of consecutive slice numbers."""
    slices = np.asarray(sorted(slices))
    breaks = np.flatnonzero(np.diff(slices) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(slices) - 1]])
    return [(int(slices[a]), int(slices[b])) for a, b in zip(starts, ends)]
