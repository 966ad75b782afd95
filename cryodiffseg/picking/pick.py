"""Picking a whole tomogram with a trained picker: the heatmap chunk by chunk, then its peaks.

Memory stays bounded by ``chunk_slices`` x one slice plus one tile's activations, whatever the
tomogram's size. Each chunk is scored with one extra slice above and below so its local maxima are
exactly those of the whole heatmap; tiles carry the network's full receptive field as context, so
chunked and one-piece picking give the same points. A tomogram at another voxel size than the
picker's is resampled to it on the fly; points are reported in the tomogram's own voxels.
"""

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .. import __version__
from ..checkpoints import RECORD, load_checkpoint, load_weights
from ..errors import CryoDiffSegError
from ..features.backbone import resolve_device
from ..folding import folded_for_inference
from ..progress import Progress
from ..records import to_jsonable, write_json
from ..tomoio import atomic_path, new_mrc_map, read_tomogram, release_pages, require_voxel_size
from .average import average_quality, default_box, random_positions
from .calibration import FALLBACK_THRESHOLD
from .figures import write_average_figure, write_score_histogram
from .network import KIND, HeatmapUNet, PickerConfig
from .output import write_particles_csv, write_particles_star
from .peaks import local_maxima, non_max_suppression
from .volume import PickerVolume

log = logging.getLogger("cryodiffseg")

HISTOGRAM_FLOOR = 0.05  # peaks from here up are kept for the score histogram


@dataclass
class PickingConfig:
    threshold: Optional[float] = None  # minimum heatmap score (0-1) of a particle centre; None: the picker's calibrated one
    min_distance_nm: Optional[float] = None  # None: the particle radius the picker was trained for
    batch_size: int = 8  # slices per network call
    tile_size: int = 512  # px per side of an inference tile (y, x), before its context margin (smaller: more margin per tile)
    chunk_slices: int = 32  # z slices scored per chunk (each also scores a slice on either side)
    device: str = "auto"
    max_points: Optional[int] = None  # keep only this many best-scoring particles
    voxel_size: Optional[float] = None  # Angstrom; None: from the tomogram header
    save_heatmap: bool = False  # also write the heatmap as MRC (at the picker's voxel size)
    average: bool = True  # average the subvolumes at the picks and at random positions (figure and figures of merit)
    box: Optional[int] = None  # voxels per side of those subvolumes; None: 1.6 particle diameters


@dataclass
class Picker:
    """A trained picker ready to run: the network as a folded evaluation copy and what its record says about it."""

    model: HeatmapUNet
    architecture: PickerConfig
    voxel_size_A: float
    particle_diameter_voxels: float
    record: dict


def load_picker(model_dir: os.PathLike, device: torch.device) -> Picker:
    """Load a picker checkpoint folder; a training output folder means its ``best/`` checkpoint."""
    folder = Path(model_dir)
    if not (folder / RECORD).is_file() and (folder / "best" / RECORD).is_file():
        folder = folder / "best"
    state, record = load_checkpoint(folder, KIND)
    try:
        architecture = PickerConfig.from_record(record["architecture"])
        voxel_size, diameter = float(record["voxel_size_A"]), float(record["particle_diameter_voxels"])
        model = architecture.build()
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CryoDiffSegError(f"The picker record {folder / RECORD} is incomplete or malformed ({exc!r}).") from None
    require_voxel_size(voxel_size, f"The picker in {folder} records a voxel size of")
    if not 0 < diameter < float("inf"):
        raise CryoDiffSegError(f"The picker in {folder} records a particle diameter of {diameter:g} voxels: a damaged record.")
    load_weights(model, state, str(folder))
    inference = folded_for_inference(model).to(device, memory_format=torch.channels_last)  # channels-last: faster convolutions
    return Picker(inference, architecture, voxel_size, diameter, record)


def pick_particles(tomogram_path: os.PathLike, model_dir: os.PathLike, out_dir: os.PathLike,
                   config: Optional[PickingConfig] = None) -> Dict[str, Path]:
    """Pick the particles of a tomogram; returns the paths written by name (particles_csv, particles_star, summary, heatmap)."""
    config = config or PickingConfig()
    _check(config)
    started = time.monotonic()
    device = resolve_device(config.device)
    picker = load_picker(model_dir, device)
    tomogram = read_tomogram(tomogram_path, voxel_size=config.voxel_size)
    volume = PickerVolume(tomogram, picker.voxel_size_A)
    if volume.scale != 1.0:
        log.info("Resampling %s from %.2f to the picker's %.2f A/voxel", tomogram.name, tomogram.voxel_size, volume.voxel_size_A)
    if config.min_distance_nm is None:
        min_distance = picker.particle_diameter_voxels / 2
    else:
        min_distance = config.min_distance_nm * 10.0 / volume.voxel_size_A
    out_dir = Path(out_dir)
    paths = {
        "particles_csv": out_dir / f"{tomogram.name}_particles.csv",
        "particles_star": out_dir / f"{tomogram.name}_particles.star",
        "summary": out_dir / f"{tomogram.name}_picking.json",
        "score_histogram": out_dir / f"{tomogram.name}_scores.png",
    }
    if config.average:
        paths["average_figure"] = out_dir / f"{tomogram.name}_picks_average.png"
    if config.save_heatmap:
        paths["heatmap"] = out_dir / f"{tomogram.name}_heatmap.mrc"

    threshold, threshold_origin = _threshold(config, picker)
    log.info("Score threshold %.2f (%s)", threshold, threshold_origin)
    depth = volume.shape[0]
    candidates, scores = [], []
    progress = Progress(f"picking {tomogram.name}", -(-depth // config.chunk_slices))
    with contextlib.ExitStack() as stack:
        heatmap_file = _open_heatmap(stack, paths.get("heatmap"), volume, tomogram.origin)
        for first in range(0, depth, config.chunk_slices):
            last = min(depth, first + config.chunk_slices)
            # One slice more on each side: the 3x3x3 maxima of [first, last) are then those of the whole.
            low, high = max(0, first - 1), min(depth, last + 1)
            slab = predict_slab(picker, volume, (low, high), config, device)
            points, values = local_maxima(slab, min(threshold, HISTOGRAM_FLOOR))
            points[:, 2] += low
            inside = (points[:, 2] >= first) & (points[:, 2] < last)
            candidates.append(points[inside])
            scores.append(values[inside])
            if heatmap_file is not None:
                heatmap_file.data[first:last] = slab[first - low : last - low]
                release_pages(heatmap_file.data)
            release_pages(tomogram.data)  # a memory-mapped tomogram's read pages go back to the page cache
            progress.step(detail=f"{int(inside.sum())} candidates")
    candidates, scores = np.concatenate(candidates), np.concatenate(scores)
    # Suppression lets only a higher score remove a peak, so cutting at the threshold afterwards gives the
    # same picks as cutting first, and the histogram shows the peaks just below the threshold too.
    kept = non_max_suppression(candidates, scores, min_distance)
    peak_scores = scores[kept]
    kept = kept[scores[kept] >= threshold]
    candidates_above = int(np.sum(scores >= threshold))
    if config.max_points is not None:
        kept = kept[: config.max_points]
    points, scores = volume.to_tomogram(candidates[kept]), scores[kept]
    log.info("%d particles picked in %s (%d candidates, threshold %.2f, minimum distance %.1f picker voxels)",
             len(points), tomogram.name, candidates_above, threshold, min_distance)

    write_particles_csv(paths["particles_csv"], points, scores)
    write_particles_star(paths["particles_star"], points, scores, tomogram.path)
    write_score_histogram(paths["score_histogram"], peak_scores, threshold, threshold_origin, f"{tomogram.name}: picker scores")
    averages = _averages(tomogram, picker, points, config, paths.get("average_figure"))
    write_json(paths["summary"], {
        "cryodiffseg_version": __version__,
        "tomogram": str(Path(tomogram_path).resolve()),
        "tomogram_voxel_size_A": tomogram.voxel_size,
        "picker": str(Path(model_dir).resolve()),
        "picker_voxel_size_A": volume.voxel_size_A,
        "particle_diameter_nm": picker.particle_diameter_voxels * picker.voxel_size_A / 10.0,
        "min_distance_picker_voxels": min_distance,
        "threshold": threshold,
        "threshold_origin": threshold_origin,
        "candidates": candidates_above,
        "particles": int(len(points)),
        **averages,
        "config": to_jsonable(dataclasses.asdict(config)),
        "outputs": {name: path.name for name, path in paths.items()},
        "elapsed_s": round(time.monotonic() - started, 2),
    })
    return paths


@torch.no_grad()
def predict_slab(picker: Picker, volume: PickerVolume, z_range: Tuple[int, int], config: PickingConfig,
                 device: torch.device) -> np.ndarray:
    """(slices, Y, X) float32 heatmap scores in [0, 1] of picker-grid slices [z_range[0], z_range[1])."""
    low, high = z_range
    architecture = picker.architecture
    context, margin, multiple = architecture.context_slices, architecture.context_margin, architecture.size_multiple
    tile = _round_up(config.tile_size, multiple)
    _, ny, nx = volume.shape
    heatmap = np.empty((high - low, ny, nx), dtype=np.float32)
    for y0 in range(0, ny, tile):
        for x0 in range(0, nx, tile):
            height, width = min(tile, ny - y0), min(tile, nx - x0)
            block = volume.block(
                (low - context, y0 - margin, x0 - margin),
                (high + context, y0 + _round_up(height, multiple) + margin, x0 + _round_up(width, multiple) + margin),
            )
            # Slice i's stack is block slices i .. i + 2 * context: a sliding window over z.
            stacks = np.lib.stride_tricks.sliding_window_view(block, 2 * context + 1, axis=0)
            stacks = np.moveaxis(stacks, -1, 1)
            for start in range(0, high - low, config.batch_size):
                batch = torch.from_numpy(np.array(stacks[start : start + config.batch_size], dtype=np.float32))
                batch = batch.to(device, memory_format=torch.channels_last)
                scores = torch.sigmoid(picker.model(batch))[:, 0, margin : margin + height, margin : margin + width]
                heatmap[start : start + len(batch), y0 : y0 + height, x0 : x0 + width] = scores.cpu().numpy()
    return heatmap


def _averages(tomogram, picker: Picker, points: np.ndarray, config: PickingConfig, figure) -> dict:
    """Figures of merit of the picks' average and of as many random positions', and the figure of both."""
    if figure is None:
        return {}
    diameter = picker.particle_diameter_voxels * picker.voxel_size_A / tomogram.voxel_size  # tomogram voxels
    box = config.box or default_box(diameter)
    picks = average_quality(tomogram.data, points, box, diameter / 2)
    random = average_quality(tomogram.data, random_positions(tomogram.shape, max(len(points), 2), box), box, diameter / 2)
    write_average_figure(figure, picks, random, f"{tomogram.name}: average of {len(points)} picks and of random positions, box {box}")
    log.info("Average of the picks: %s; of random positions: %s", _describe(picks), _describe(random))
    return {"average_box": box, "picks_average": picks.to_record() if picks else None,
            "random_average": random.to_record() if random else None}


def _describe(quality) -> str:
    if quality is None:
        return "fewer than 2 boxes inside the tomogram"
    return f"{quality.boxes} boxes, centre contrast {quality.centre_contrast:.2f}, low-shell FSC {quality.fsc_low:.2f}"


def _threshold(config: PickingConfig, picker: Picker) -> Tuple[float, str]:
    """(threshold, where it comes from): the user's, else the one calibrated at training, else the fallback."""
    if config.threshold is not None:
        return config.threshold, "given"
    calibrated = picker.record.get("threshold")
    if calibrated is None:
        return FALLBACK_THRESHOLD, "fixed: this picker was trained before thresholds were calibrated"
    method = (picker.record.get("threshold_calibration") or {}).get("method", "held-out points")
    return float(calibrated), f"calibrated at training: {method}"


def _open_heatmap(stack: contextlib.ExitStack, path: Optional[Path], volume: PickerVolume, origin):
    """A float32 MRC memory map for the heatmap, renamed into place only if picking completes."""
    if path is None:
        return None
    tmp = stack.enter_context(atomic_path(path, suffix=".mrc"))
    mrc = stack.enter_context(new_mrc_map(tmp, volume.shape, np.float32))
    mrc.voxel_size = volume.voxel_size_A
    mrc.header.origin = tuple(float(v) for v in origin)
    return mrc


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _check(config: PickingConfig) -> None:
    if config.threshold is not None and not 0.0 < config.threshold <= 1.0:
        raise CryoDiffSegError(f"The picking threshold must lie in (0, 1], got {config.threshold}.")
    if config.batch_size < 1 or config.chunk_slices < 1 or config.tile_size < 1:
        raise CryoDiffSegError("Picking needs a batch size, chunk size and tile size of at least 1.")
    if config.min_distance_nm is not None and config.min_distance_nm < 0:
        raise CryoDiffSegError(f"The minimum distance between particles cannot be negative, got {config.min_distance_nm} nm.")
    if config.box is not None and config.box < 4:
        raise CryoDiffSegError(f"The averaging box must be at least 4 voxels, got {config.box}.")
    if config.max_points is not None and config.max_points < 0:
        raise CryoDiffSegError(f"The maximum number of particles cannot be negative, got {config.max_points}.")
