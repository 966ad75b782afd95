"""Automatic choice of the slabs to pseudo-label: slices inside the sample, covering the data set's content.

A hand-picked slab is where the pseudo-labels, and so every model trained on them, learn what the data set
looks like; picking it needs someone who knows the tomograms, and it is biased towards what that person
noticed. Here every slice of every tomogram is described by a few cheap features, computed slice by slice
from the memory-mapped volume on a binned grid (the sample is seen at the physical scales that matter, so
binning loses nothing these features need):

* intensity statistics after per-tomogram normalisation (median and robust spread of the tomogram);
* the structure contrast: the spread of the slice smoothed at the bilayer's scale, where noise averages out
  and membranes, filaments and particles do not. Slices outside the lamella hold reconstructed noise and
  streaks only, and score low;
* a dark-ridge response (2-D Hessian at the bilayer's scale) and a dark-blob response (scale-normalised
  Laplacian at the particle's scale), each as the 99th percentile of the slice in noise levels of the
  tomogram.

Slices are never chosen when they are constant or padded (a large share of flat pixels), near the first
and last slices of the reconstruction (edge artefacts), or of low contrast (below ``min_content`` of the
tomogram's 90th-percentile contrast: outside the lamella, or empty). Among the slabs made only of the other
slices, a greedy k-medoids choice covers the feature space with typical slabs: the first is the one nearest,
on average, to every candidate slab of the data set, each next one the slab that most lowers the mean
distance of every candidate to its nearest chosen slab. Measured (BENCHMARKS.md, slabs): a farthest-point
(k-center) choice takes the data set's extremes, slices crowded with filaments and particles where the
pseudo-labels are worst; two slabs of two slices beat one of four (more distinct particles and membranes for
the same labelled slices). Slabs of one tomogram never touch, so the spec keeps them apart. The seed picks
among first slabs of nearly equal typicality and breaks ties: the same seed gives the same slabs.
"""

import logging
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from ..errors import CryoDiffSegError
from ..progress import Progress
from ..tomoio import Tomogram

log = logging.getLogger("cryodiffseg")

_TRUNCATE = 4.0
_SAMPLES_PER_SLICE = 512  # voxels per slice kept to estimate the tomogram's median and spread
_MAX_DEMAND = 2000  # candidate slabs each choice is measured against (a seeded sample beyond this)
FEATURES = ("mean", "spread", "contrast", "dark", "ridge", "blob")  # per-slice feature names, in column order

_BUDGET = re.compile(r"^\s*(?:(\d+)\s*x\s*(\d+)|(\d+(?:\.\d*)?|\.\d+)\s*%\s*(?:x\s*(\d+))?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SlabSelectionConfig:
    """What is chosen and how slices are judged; lengths in nm so that any voxel size is judged alike."""

    slabs: int = 2  # number of slabs (ignored when ``share`` is given)
    slices_per_slab: int = 2  # contiguous slices per slab
    share: Optional[float] = None  # alternatively: at most this fraction (0-1] of all slices of the data set
    seed: int = 0  # picks among near-equal first slabs and breaks ties
    min_content: float = 0.5  # a slice's structure contrast must reach this fraction of its tomogram's 90th percentile
    max_flat: float = 0.2  # a slice with more than this fraction of flat (padded) pixels is never chosen
    edge_fraction: float = 0.03  # the first and last slices (this fraction of the depth, >= 1 each) are never chosen
    sheet_scale_nm: float = 3.0  # bilayer scale: structure contrast and ridge response
    particle_diameter_nm: float = 25.0  # blob response at this particle's scale
    position_weight: float = 0.5  # distance between slabs: feature distance + this x z distance in the sample (0-2)
    max_side_px: int = 512  # slices are binned (block means) to at most this many pixels per side
    typical_tolerance: float = 0.05  # each slab: seeded choice among those within this fraction of the best cost

    def validate(self) -> None:
        if self.slabs < 1 or self.slices_per_slab < 1:
            raise CryoDiffSegError("The slab budget needs at least one slab of at least one slice.")
        if self.share is not None and not 0 < self.share <= 1:
            raise CryoDiffSegError(f"The share of slices must be in (0, 100%], got {100 * self.share:g}%.")
        if not 0 <= self.min_content < 1 or not 0 < self.max_flat <= 1 or not 0 <= self.edge_fraction < 0.5:
            raise CryoDiffSegError("Slab selection needs 0 <= min content < 1, 0 < max flat <= 1 and 0 <= edge fraction < 0.5.")
        if not self.sheet_scale_nm > 0 or not self.particle_diameter_nm > 0 or self.max_side_px < 16:
            raise CryoDiffSegError("The sheet scale and particle diameter must be positive and the binned side >= 16 px.")
        if self.position_weight < 0 or self.typical_tolerance < 0 or self.seed < 0:
            raise CryoDiffSegError("The position weight, typical tolerance and seed must not be negative.")


def parse_budget(text: str, defaults: SlabSelectionConfig = SlabSelectionConfig()) -> SlabSelectionConfig:
    """``NxL`` (N slabs of L slices), ``P%`` (at most P% of all slices, in slabs of the default length) or ``P%xL``."""
    match = _BUDGET.match(text or "")
    if not match:
        raise CryoDiffSegError(f"Cannot read budget '{text}': use NxL (N slabs of L slices, e.g. 2x4), P% or P%xL (e.g. 5%x4).")
    count, length, share, share_length = match.groups()
    if count is not None:
        config = replace(defaults, slabs=int(count), slices_per_slab=int(length), share=None)
    else:
        config = replace(defaults, share=float(share) / 100,
                         slices_per_slab=int(share_length) if share_length else defaults.slices_per_slab)
    config.validate()
    return config


def slab_count(config: SlabSelectionConfig, total_slices: int) -> Tuple[int, int]:
    """(slabs, slices per slab) of the budget for a data set of ``total_slices``: a share never gives more
    slices than it allows, but at least one slice."""
    if config.share is None:
        return config.slabs, config.slices_per_slab
    allowed = max(1, int(math.floor(config.share * total_slices + 1e-9)))
    if allowed < config.slices_per_slab:
        return 1, allowed
    return allowed // config.slices_per_slab, config.slices_per_slab


@dataclass
class SliceScores:
    """Per-slice features of one tomogram and which slices may be chosen (``reasons[z]`` None)."""

    name: str
    features: np.ndarray  # (depth, len(FEATURES)), NaN for slices without valid pixels
    quality: np.ndarray  # (depth,) structure contrast / the tomogram's reference, clipped to [0, 1]
    reasons: List[Optional[str]]  # why a slice is never chosen, None if it may be
    reference: float  # the tomogram's 90th-percentile structure contrast
    flat: np.ndarray  # (depth,) fraction of flat pixels
    binning: int

    @property
    def eligible(self) -> np.ndarray:
        return np.array([r is None for r in self.reasons], dtype=bool)


@dataclass
class ChosenSlab:
    tomogram: int  # index in the input list
    first: int
    last: int  # inclusive
    why: str


@dataclass
class Selection:
    scores: List[SliceScores]
    chosen: List[ChosenSlab]
    slabs: int
    slices_per_slab: int

    def slabs_of(self, index: int) -> List[Tuple[int, int]]:
        return sorted((c.first, c.last) for c in self.chosen if c.tomogram == index)

    def spec(self, index: int) -> str:
        """The slab spec of one tomogram, as ``cryodiffseg pseudolabel --slabs`` reads it ('' if none)."""
        return ",".join(f"{first}-{last}" for first, last in self.slabs_of(index))


def binning_factor(shape_yx: Sequence[int], voxel_size_nm: float, config: SlabSelectionConfig) -> int:
    """Block size of the binned grid: the slice fits ``max_side_px``, but a pixel never grows beyond the
    bilayer scale, past which the ridge response would see no membrane."""
    fit = int(math.ceil(max(shape_yx) / config.max_side_px))
    coarsest = max(1, int(config.sheet_scale_nm / voxel_size_nm + 1e-9))
    return max(1, min(fit, coarsest))


def _binned(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` x ``factor`` pixels (float32), summed from strided views: no copy of the slice."""
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    out = np.zeros((h, w), dtype=np.float32)
    for dy in range(factor):
        for dx in range(factor):
            out += image[dy : h * factor : factor, dx : w * factor : factor]
    return out / np.float32(factor * factor)


def _flat_pixels(image: np.ndarray) -> np.ndarray:
    """Pixels inside a 2 x 2 plateau of equal values: padding, or a constant region. Noisy data, even 8-bit,
    almost never has four equal neighbours, while a padded border is made of nothing else."""
    corner = image[:-1, :-1]
    plateau = (corner == image[1:, :-1]) & (corner == image[:-1, 1:]) & (corner == image[1:, 1:])
    flat = np.zeros(image.shape, dtype=bool)
    for dy in (0, 1):
        for dx in (0, 1):
            flat[dy : dy + plateau.shape[0], dx : dx + plateau.shape[1]] |= plateau
    return flat


def _gaussian_derivatives(image: np.ndarray, sigma: float):
    """(smoothed, d2/dy2, d2/dx2, d2/dxdy) at ``sigma``, sharing the separable passes along x."""
    along_x = [ndi.gaussian_filter1d(image, sigma, axis=1, order=k, mode="reflect", truncate=_TRUNCATE) for k in (0, 1, 2)]
    along_y = lambda data, k: ndi.gaussian_filter1d(data, sigma, axis=0, order=k, mode="reflect", truncate=_TRUNCATE)  # noqa: E731
    return along_y(along_x[0], 0), along_y(along_x[0], 2), along_y(along_x[2], 0), along_y(along_x[1], 1)


def slice_measures(image: np.ndarray, sheet_sigma: float, blob_sigma: float, rng) -> Optional[dict]:
    """Raw measures of one binned slice (None when every pixel is flat): flat share, mean, spread,
    structure-scale spread and 5th percentile, ridge and blob 99th percentiles and medians, a voxel sample.

    The filters run on the whole slice; the statistics read every other row and column of it, which is
    plenty for a percentile and halves the cost. The blob response, a coarse measure, runs on a 2x-binned
    copy when the particle spans enough pixels for that.
    """
    image = np.asarray(image, dtype=np.float32)
    valid = ~_flat_pixels(image)
    count = int(valid.sum())
    measures = {"flat": 1.0 - count / image.size}
    if count < 16:
        return None if count == 0 else {**measures, "too_few": True}
    step = 2 if min(image.shape) >= 128 else 1
    grid = (slice(None, None, step), slice(None, None, step))
    keep = valid[grid]
    if not keep.any():
        keep, grid = valid, (slice(None), slice(None))
    values = image[grid][keep]
    centre = float(np.median(values))
    filled = np.where(valid, image, np.float32(centre))  # padding must not make edges
    smooth, hyy, hxx, hxy = _gaussian_derivatives(filled, sheet_sigma)
    hyy, hxx, hxy = hyy[grid][keep], hxx[grid][keep], hxy[grid][keep]
    half_trace, root = (hxx + hyy) / 2, np.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2)
    largest, other = half_trace + root, half_trace - root
    ridge = np.where(largest > 0, np.maximum(largest - np.abs(other), 0), 0) * sheet_sigma**2
    if blob_sigma >= 2.0 and min(image.shape) >= 32:
        coarse, coarse_sigma = _binned(filled, 2), blob_sigma / 2
        blob_valid = _binned(valid.astype(np.float32), 2) > 0.5
    else:
        coarse, coarse_sigma, blob_valid = filled, blob_sigma, valid
    _, byy, bxx, _ = _gaussian_derivatives(coarse, coarse_sigma)
    blob = ((byy + bxx) * coarse_sigma**2)[blob_valid]
    if not blob.size:
        blob = np.zeros(1, dtype=np.float32)
    smooth_values = smooth[grid][keep]
    measures.update(
        mean=float(values.mean()), spread=float(values.std()), contrast=float(smooth_values.std()),
        dark=float(np.percentile(smooth_values, 5)),
        ridge=float(np.percentile(ridge, 99)), ridge_noise=float(np.median(np.abs(largest))) * sheet_sigma**2,
        blob=float(np.percentile(blob, 99)), blob_noise=float(np.median(np.abs(blob))),
        sample=values[rng.integers(0, len(values), size=min(_SAMPLES_PER_SLICE, len(values)))],
    )
    return measures


def score_tomogram(tomogram: Tomogram, config: SlabSelectionConfig, seed: int = 0) -> SliceScores:
    """Features of every slice of ``tomogram``, read one slice at a time, and which slices may be chosen."""
    depth, height, width = tomogram.shape
    factor = binning_factor((height, width), tomogram.voxel_size_nm, config)
    pixel_nm = tomogram.voxel_size_nm * factor
    sheet_sigma = max(0.7, config.sheet_scale_nm / pixel_nm)
    blob_sigma = max(1.0, config.particle_diameter_nm / 2 / pixel_nm / math.sqrt(3.0))
    rng = np.random.default_rng(seed)
    progress = Progress(f"slab selection: slice features of {tomogram.name}", depth)
    raw: List[Optional[dict]] = []
    for z in range(depth):
        image = np.asarray(tomogram.data[z], dtype=np.float32)
        if not np.isfinite(image).all():
            raise CryoDiffSegError(f"{tomogram.path} contains NaN or Inf values (first in slice z={z}).")
        raw.append(slice_measures(_binned(image, factor), sheet_sigma, blob_sigma, rng))
        progress.step()
    measured = [m for m in raw if m is not None and "sample" in m]
    if not measured:
        raise CryoDiffSegError(f"{tomogram.path} has no slice with structure (constant or padded throughout).")
    sample = np.concatenate([m["sample"] for m in measured])
    centre = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - centre))) or float(sample.std()) or 1.0
    ridge_noise = float(np.median([m["ridge_noise"] for m in measured])) or 1.0
    blob_noise = float(np.median([m["blob_noise"] for m in measured])) or 1.0
    features = np.full((depth, len(FEATURES)), np.nan)
    flat = np.ones(depth)
    for z, m in enumerate(raw):
        if m is None:
            continue
        flat[z] = m["flat"]
        if "sample" in m:
            features[z] = [(m["mean"] - centre) / spread, m["spread"] / spread, m["contrast"] / spread,
                           (m["dark"] - centre) / spread, m["ridge"] / ridge_noise, m["blob"] / blob_noise]
    contrast = features[:, FEATURES.index("contrast")]
    usable = np.isfinite(contrast) & (flat <= config.max_flat)
    reference = float(np.percentile(contrast[usable], 90)) if usable.any() else float(np.nanpercentile(contrast, 90))
    reference = reference if reference > 0 else 1.0
    quality = np.clip(np.nan_to_num(contrast / reference, nan=0.0), 0.0, 1.0)
    edge = max(1, int(round(config.edge_fraction * depth))) if config.edge_fraction > 0 else 0
    reasons: List[Optional[str]] = []
    for z in range(depth):
        if raw[z] is None or not np.isfinite(contrast[z]):
            reasons.append("constant" if raw[z] is None or flat[z] >= 1 else "padded")
        elif flat[z] > config.max_flat:
            reasons.append(f"padded ({100 * flat[z]:.0f}% flat pixels)")
        elif z < edge or z >= depth - edge:
            reasons.append("reconstruction edge")
        elif contrast[z] < config.min_content * reference:
            reasons.append(f"low contrast ({contrast[z] / reference:.2f} of the tomogram's reference)")
        else:
            reasons.append(None)
    kept = sum(r is None for r in reasons)
    log.info("%s: %d of %d slices inside the sample and usable (binned %dx for features, %.2f nm pixels)",
             tomogram.name, kept, depth, factor, pixel_nm)
    return SliceScores(tomogram.name, features, quality, reasons, reference, flat, factor)


def _runs(eligible: np.ndarray) -> List[Tuple[int, int]]:
    """(first, last) of each run of consecutive eligible slices."""
    runs, start = [], None
    for z, ok in enumerate(list(eligible) + [False]):
        if ok and start is None:
            start = z
        elif not ok and start is not None:
            runs.append((start, z - 1))
            start = None
    return runs


def choose_slabs(scores: Sequence[SliceScores], config: SlabSelectionConfig) -> Selection:
    """The greedy k-medoids choice of slabs over every tomogram's candidate slabs (all windows of eligible slices)."""
    config.validate()
    total = sum(len(s.reasons) for s in scores)
    count, length = slab_count(config, total)
    eligible_rows = [s.features[s.eligible] for s in scores]
    pooled = np.concatenate(eligible_rows) if any(len(r) for r in eligible_rows) else np.zeros((0, len(FEATURES)))
    if not len(pooled):
        raise CryoDiffSegError("No slice of the tomograms is inside the sample: every slice is constant, padded, "
                               "at the reconstruction's edge or of low contrast.")
    median = np.median(pooled, axis=0)
    scale = 1.4826 * np.median(np.abs(pooled - median), axis=0)
    scale = np.where(scale > 0, scale, pooled.std(axis=0))
    scale = np.where(scale > 0, scale, 1.0)

    tomo, first, feats, quality, position = [], [], [], [], []
    for t, s in enumerate(scores):
        standard = np.clip((s.features - median) / scale, -4.0, 4.0)
        runs = _runs(s.eligible)
        low, high = (min(r[0] for r in runs), max(r[1] for r in runs)) if runs else (0, 0)
        for a, b in runs:
            for start in range(a, b - length + 2):
                window = slice(start, start + length)
                tomo.append(t)
                first.append(start)
                feats.append(standard[window].mean(axis=0))
                quality.append(float(s.quality[window].min()))
                centre = start + (length - 1) / 2
                position.append(0.0 if high == low else 2 * (centre - low) / (high - low) - 1)
    if not tomo:
        raise CryoDiffSegError(f"No run of {length} consecutive usable slices in any tomogram: ask for shorter slabs.")
    tomo, first, feats = np.array(tomo), np.array(first), np.array(feats)
    quality, position = np.array(quality), np.array(position)
    rng = np.random.default_rng(config.seed)
    rank = rng.permutation(len(tomo))  # seeded tie-break order
    # The candidate slabs every choice must represent: all of them, or a seeded sample of a large data set.
    demand = np.sort(rng.choice(len(tomo), _MAX_DEMAND, replace=False)) if len(tomo) > _MAX_DEMAND else np.arange(len(tomo))

    def distance(i: int) -> np.ndarray:
        """Feature distance + position_weight x (z distance within a tomogram, or the largest, 2, between), to each demand slab."""
        where = np.where(tomo[demand] == tomo[i], np.abs(position[demand] - position[i]), 2.0)
        return np.linalg.norm(feats[demand] - feats[i], axis=1) + config.position_weight * where

    good = quality >= 0.75 if (quality >= 0.75).any() else np.ones(len(tomo), bool)
    available = good.copy()
    nearest = np.full(len(demand), np.inf)  # each demand slab's distance to the nearest chosen slab
    chosen: List[ChosenSlab] = []
    while len(chosen) < count and available.any():
        candidates = np.flatnonzero(available)
        cost = np.array([np.minimum(nearest, distance(c)).mean() for c in candidates])
        pool = candidates[cost <= cost.min() * (1 + config.typical_tolerance) + 1e-9]
        pick = int(pool[np.argmin(rank[pool])]) if chosen else int(pool[rng.integers(len(pool))])
        gained = distance(pick)
        closer = float((gained < nearest).mean()) if chosen else 1.0
        nearest = np.minimum(nearest, gained)
        why = (f"most typical slab: mean feature distance {nearest.mean():.2f} to the data set's slabs (seeded choice among "
               f"{len(pool)} within {100 * config.typical_tolerance:g}%)" if not chosen else
               f"typical of what the slabs before left out: the nearest chosen slab for {100 * closer:.0f}% of the data "
               f"set's slabs, mean distance now {nearest.mean():.2f}")
        chosen.append(ChosenSlab(int(tomo[pick]), int(first[pick]), int(first[pick]) + length - 1, f"{why}, contrast {quality[pick]:.2f}"))
        same = tomo == tomo[pick]
        available &= ~(same & (first <= first[pick] + length) & (first + length - 1 >= first[pick] - 1))  # slabs never touch
    if len(chosen) < count:
        log.warning("Only %d of the %d slabs asked for fit in the usable slices without touching each other", len(chosen), count)
    return Selection(list(scores), chosen, count, length)


def select_slabs(tomograms: Sequence[Tomogram], config: SlabSelectionConfig) -> Selection:
    """Score every tomogram's slices, then choose the slabs (the whole pipeline of this module)."""
    config.validate()
    start = time.monotonic()
    scores = [score_tomogram(t, config, seed=config.seed + i) for i, t in enumerate(tomograms)]
    selection = choose_slabs(scores, config)
    for i, t in enumerate(tomograms):
        spec = selection.spec(i)
        log.info("Slabs chosen for %s: %s", t.name, spec or "none")
    log.info("Slab selection: %d slab(s) of %d slices in %.1f s", len(selection.chosen), selection.slices_per_slab,
             time.monotonic() - start)
    return selection


def selection_record(selection: Selection, tomograms: Sequence[Tomogram], config: SlabSelectionConfig) -> dict:
    """JSON-ready record: the budget, the chosen slabs per tomogram and why, every slice's scores."""
    per_tomogram = []
    for i, (scores, tomogram) in enumerate(zip(selection.scores, tomograms)):
        slices = []
        for z, reason in enumerate(scores.reasons):
            row = {"z": z, "usable": reason is None, "reason": reason, "quality": round(float(scores.quality[z]), 4),
                   "flat_fraction": round(float(scores.flat[z]), 4)}
            row.update({name: (None if not np.isfinite(v) else round(float(v), 4)) for name, v in zip(FEATURES, scores.features[z])})
            slices.append(row)
        per_tomogram.append({
            "path": str(tomogram.path.resolve()), "name": tomogram.name, "shape_zyx": list(tomogram.shape),
            "voxel_size_A": tomogram.voxel_size, "binning": scores.binning, "reference_contrast": round(scores.reference, 6),
            "usable_slices": int(scores.eligible.sum()), "slabs": [list(s) for s in selection.slabs_of(i)],
            "spec": selection.spec(i), "slices": slices,
        })
    return {
        "budget": {"slabs": selection.slabs, "slices_per_slab": selection.slices_per_slab, "share": config.share,
                   "chosen_slabs": len(selection.chosen),
                   "chosen_slices": len(selection.chosen) * selection.slices_per_slab},
        "order": [{"tomogram": tomograms[c.tomogram].name, "slab": [c.first, c.last], "why": c.why} for c in selection.chosen],
        "tomograms": per_tomogram,
        "features": {"names": list(FEATURES), "quality": "structure contrast / the tomogram's 90th percentile, clipped to 1"},
        "config": asdict(config),
    }


def write_selection_figure(path, scores: SliceScores, slabs: Sequence[Tuple[int, int]], config: SlabSelectionConfig) -> None:
    """Per-slice score plot of one tomogram: contrast (the in-sample score), ridge and blob responses, the
    slices never chosen shaded, the chosen slabs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..tomoio import atomic_path

    depth = len(scores.reasons)
    z = np.arange(depth)
    fig, ax = plt.subplots(figsize=(9, 3.6), constrained_layout=True)
    ax.plot(z, scores.quality, color="black", lw=1.5, label="structure contrast (of reference)")
    for name, colour in (("ridge", "tab:blue"), ("blob", "tab:green")):
        column = scores.features[:, FEATURES.index(name)]
        top = np.nanmax(column) if np.isfinite(column).any() else 1.0
        ax.plot(z, np.nan_to_num(column / (top if top > 0 else 1.0)), color=colour, lw=1, alpha=0.8,
                label=f"{name} response (of max)")
    ax.axhline(config.min_content, color="grey", ls="--", lw=0.8, label=f"min contrast {config.min_content:g}")
    for zz, reason in enumerate(scores.reasons):
        if reason is not None:
            ax.axvspan(zz - 0.5, zz + 0.5, color="0.85", lw=0, zorder=0)
    for i, (first, last) in enumerate(slabs):
        ax.axvspan(first - 0.5, last + 0.5, color="tab:red", alpha=0.35, lw=0)
        ax.text((first + last) / 2, 1.04, f"{first}-{last}", ha="center", va="bottom", fontsize=8, color="tab:red")
    ax.set_xlim(-0.5, depth - 0.5)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("z (slice)")
    ax.set_ylabel("score")
    ax.legend(loc="lower center", fontsize=7, ncol=4, frameon=False)
    chosen = ", ".join(f"{a}-{b}" for a, b in slabs) or "none"
    ax.set_title(f"{scores.name}: chosen slabs {chosen}; grey: never chosen (outside the sample, padded, edge)", fontsize=9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def auto_slabs(tomogram: Tomogram, qc_dir, config: SlabSelectionConfig = SlabSelectionConfig()) -> Tuple[str, dict, object]:
    """For ``pseudolabel --slabs auto``: (slab spec, record, QC figure path) for one tomogram, default budget."""
    selection = select_slabs([tomogram], config)
    record = selection_record(selection, [tomogram], config)
    figure = Path(qc_dir) / f"{tomogram.name}_slab_selection.png"
    write_selection_figure(figure, selection.scores[0], selection.slabs_of(0), config)
    summary = {"automatic": True, "spec": selection.spec(0), "order": record["order"], "budget": record["budget"],
               "usable_slices": record["tomograms"][0]["usable_slices"], "qc": figure.name, "config": record["config"]}
    return selection.spec(0), summary, figure

