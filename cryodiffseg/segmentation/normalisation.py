"""Input normalisation shared by training and segmentation: every 2-D slice z-scored on its own.

Per slice rather than per tomogram, so a model sees the same statistics whether it is applied to a
whole tomogram, to one chunk of it, or to the planes of another axis, and no pass over the whole
volume is needed before the first prediction.
"""

from typing import Tuple

import numpy as np

NORMALISATION = "slice-zscore"  # recorded in every checkpoint; segmentation refuses any other


def slice_statistics(image: np.ndarray) -> Tuple[float, float]:
    """(mean, standard deviation) of a slice, accumulated in float64; a constant slice gets std 1."""
    image = np.asarray(image)
    mean, std = float(image.mean(dtype=np.float64)), float(image.std(dtype=np.float64))
    return mean, std if std > 0 else 1.0

