"""Canvas of one patch: the eigen-maps that together show the most structure, merged into one image.

The base map is the most varied map that is not fragmented into many pieces; other maps are added one at
a time while they resemble the current canvas, keep it unfragmented and do not make it more uniform.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


@dataclass(frozen=True)
class CanvasConfig:
    """Thresholds of the canvas construction (defaults are the published ones)."""

    n_maps: int = 10  # eigen-maps considered, in eigenvalue order
    polarity_level: float = 100.0  # a map is bright enough when enough pixels exceed this (0-255 scale)
    polarity_min_fraction: float = 0.4  # ... and "enough" is this fraction; otherwise the map is inverted
    diversity_window: int = 4
    diversity_stride: int = 2
    max_base_contours: int = 10
    max_merged_contours: int = 15
    min_ssim: float = 0.35  # a candidate must be this similar to the current canvas (strictly above)
    max_merge_rounds: int = 10
    output_size: int = 512


@dataclass
class CanvasResult:
    """The canvas and the decisions that built it (indices into the eigen-maps)."""

    image: np.ndarray  # uint8, output_size x output_size
    base_index: int
    merged_indices: List[int] = field(default_factory=list)  # in merge order


def minmax_scale(image: np.ndarray) -> np.ndarray:
    """Float copy stretched to 0-255; a constant image becomes all zeros rather than NaN."""
    image = np.asarray(image, dtype=np.float64)
    low, high = image.min(), image.max()
    if high <= low:
        return np.zeros_like(image)
    return (image - low) * (255.0 / (high - low))


def polarity_fix(image: np.ndarray, config: CanvasConfig = CanvasConfig()) -> np.ndarray:
    """Invert a 0-255 image that is mostly dark, so structures have one polarity on every canvas.

    The dtype is kept (uint8 stays uint8).
    """
    bright_fraction = np.count_nonzero(image > config.polarity_level) / image.size
    if bright_fraction < config.polarity_min_fraction:
        return (255 - image).astype(image.dtype, copy=False)
    return image


def diversity(image: np.ndarray, config: CanvasConfig = CanvasConfig()) -> float:
    """Spread of local contrast: std over sliding windows of each window's std.

    High for a map with both flat and textured regions, low for uniform noise or a flat map.
    """
    size, stride = config.diversity_window, config.diversity_stride
    windows = sliding_window_view(np.asarray(image, dtype=np.float64), (size, size))[::stride, ::stride]
    return float(windows.std(axis=(-2, -1)).std())


def count_contours(image: np.ndarray) -> int:
    """Number of separate regions (external contours) after Otsu binarisation.

    A float map is scaled to 0-255 and truncated to uint8 as the reference does: rounding instead moves
    Otsu's threshold by a grey level on some maps and changes their count.
    """
    if image.dtype != np.uint8:
        image = minmax_scale(image).astype(np.uint8)
    _, binary = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return len(contours)


def build_canvas(eigenmaps: np.ndarray, config: CanvasConfig = CanvasConfig()) -> Optional[CanvasResult]:
    """Canvas of one patch from its eigen-maps (C x h x w), or None when every map is too fragmented."""
    maps = [polarity_fix(minmax_scale(m), config) for m in np.asarray(eigenmaps)[: config.n_maps]]
    diversities = [diversity(m, config) for m in maps]
    eligible = [i for i, m in enumerate(maps) if count_contours(m) <= config.max_base_contours]
    if not eligible:
        return None
    base_index = max(eligible, key=lambda i: diversities[i])  # first of equals wins
    base, base_diversity = maps[base_index], diversities[base_index]
    merged: List[int] = []
    for _ in range(config.max_merge_rounds):
        choice = _best_candidate(maps, base, base_diversity, {base_index, *merged}, config)
        if choice is None:
            break
        index, base = choice
        base_diversity = diversity(base, config)
        merged.append(index)
    image = cv2.resize(base.astype(np.uint8), (config.output_size,) * 2, interpolation=cv2.INTER_CUBIC)
    return CanvasResult(image=polarity_fix(image, config), base_index=base_index, merged_indices=merged)


def _best_candidate(maps, base, base_diversity, used, config):
    """(index, merged map) of the admissible candidate most faithful to ``base`` (highest PSNR), or None."""
    data_range = float(base.max() - base.min())
    if data_range == 0:  # similarity to a flat canvas is undefined
        return None
    best = None
    for index, candidate in enumerate(maps):
        if index in used:
            continue
        if structural_similarity(base, candidate, data_range=data_range) <= config.min_ssim:
            continue
        merged = minmax_scale(base + candidate)
        if count_contours(merged) > config.max_merged_contours or diversity(merged, config) < base_diversity:
            continue
        with np.errstate(divide="ignore"):  # identical maps: infinite PSNR, the best possible
            psnr = peak_signal_noise_ratio(base, candidate, data_range=data_range)
        if best is None or psnr > best[0]:
            best = (psnr, index, merged)
    return None if best is None else best[1:]
