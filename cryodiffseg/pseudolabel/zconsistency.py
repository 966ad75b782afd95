"""Consistency of the canvases of one patch position along z.

Neighbouring slices of a tomogram show nearly the same structures, so a canvas is smoothed with its two
neighbours; a canvas unlike both of its neighbours while they agree with each other is an outlier (the
canvas construction picked other maps there) and is replaced by their mean.
"""

from dataclasses import dataclass
from typing import Dict, List, Mapping, NamedTuple, Optional

import numpy as np
from skimage.metrics import structural_similarity

from .canvas import minmax_scale


@dataclass(frozen=True)
class ZConsistencyConfig:
    """Thresholds and weights of the z correction (defaults are the published ones)."""

    neighbour_agreement: float = 0.9  # SSIM(z-1, z+1) above this: the neighbours agree
    outlier_similarity: float = 0.8  # SSIM(z, z+-1) below this for both: slice z disagrees with them
    centre_weight: float = 0.5  # the rest is split evenly between the two neighbours


class ZConsistencyResult(NamedTuple):
    """Corrected canvases (None stays None) and the slices replaced as outliers, for the log and QC."""

    canvases: Dict[int, Optional[np.ndarray]]
    replaced: List[int]


def correct_z(
    canvases: Mapping[int, Optional[np.ndarray]], config: ZConsistencyConfig = ZConsistencyConfig()
) -> ZConsistencyResult:
    """Smooth each canvas with its neighbours z-1 and z+1, or replace it when it is an outlier.

    Only the uncorrected canvases are used as neighbours. A slice without a canvas on both sides (an end
    slice, a gap, a neighbour that got no canvas) is returned unchanged; corrected slices are stretched
    back to 0-255 uint8.
    """
    result = ZConsistencyResult(canvases={}, replaced=[])
    for z, current in canvases.items():
        previous, following = canvases.get(z - 1), canvases.get(z + 1)
        if current is None or previous is None or following is None:
            result.canvases[z] = current
            continue
        previous, following, centre = (np.asarray(a, dtype=np.float64) for a in (previous, following, current))
        data_range = float(previous.max() - previous.min()) or 255.0  # a flat z-1 has no range of its own
        agree = structural_similarity(previous, following, data_range=data_range) > config.neighbour_agreement
        if agree and all(
            structural_similarity(neighbour, centre, data_range=data_range) < config.outlier_similarity
            for neighbour in (previous, following)
        ):
            corrected = 0.5 * (previous + following)
            result.replaced.append(z)
        else:
            side_weight = 0.5 * (1.0 - config.centre_weight)
            corrected = config.centre_weight * centre + side_weight * (previous + following)
        result.canvases[z] = np.round(minmax_scale(corrected)).astype(np.uint8)
    return result
