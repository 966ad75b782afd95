"""Slice preprocessing before feature extraction (METHOD section 1).

Min-max stretch to 0-255, Gaussian smoothing (sigma 1.25 px), stretch again. CLAHE (clip 2, 8x8 tiles)
is available but off by default: the paper names it, the reference code computes it and discards it.
"""

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass
class PreprocessConfig:
    smoothing_sigma: float = 1.25
    clahe: bool = False
    clahe_clip: float = 2.0
    clahe_tiles: int = 8


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max stretch to 0-255, truncated to uint8 (a constant image maps to 0)."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = image.min(), image.max()
    if hi == lo:
        return np.zeros(image.shape, dtype=np.uint8)
    return (255 * (image - lo) / (hi - lo)).astype(np.uint8)


def preprocess_slice(image: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """One z-slice -> uint8 image ready for tiling."""
    stretched = stretch_to_uint8(image)
    if config.clahe:
        clahe = cv2.createCLAHE(clipLimit=config.clahe_clip, tileGridSize=(config.clahe_tiles, config.clahe_tiles))
        stretched = clahe.apply(stretched)
    return stretch_to_uint8(gaussian_filter(stretched, sigma=config.smoothing_sigma))
