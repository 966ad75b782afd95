"""Segmenting a whole tomogram with a trained membrane model, a chunk of slices at a time.

The tomogram is read from its memory map chunk by chunk and both outputs are written through memory-
mapped MRC files under temporary names, renamed when complete; resident pages are handed back after
every chunk, so memory stays at about one chunk whatever the tomogram size. Optionally the
probabilities are averaged with predictions on the (z, x) and (z, y) planes. The tomogram's values
are checked first (one streamed pass), as every command checks them: NaN or a constant volume is refused
before any prediction.
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

from .. import __version__
from ..errors import CryoDiffSegError
from ..features.backbone import resolve_device
from ..progress import Progress
from ..records import to_jsonable, write_json
from ..tomoio import Tomogram, atomic_path, read_tomogram, release_pages, temporary_path, write_text
from .components import membrane_pieces, write_membrane_mask
from .model import load_membrane_model
from .predict import SlicePredictor
from .volumes import AXES, new_mrc_volume, planes_per_chunk, read_planes, write_planes

log = logging.getLogger("cryodiffseg")


@dataclass
class SegmentationConfig:
    """How to run a membrane model over a tomogram.

    ``axes``: planes to predict on; ("z",) is slice by slice, ("z", "y", "x") averages the three
    orientations (three times the work; the model learnt x-y slices, and the missing wedge makes the
    other planes look different, so check that it helps). ``voxel_size`` (A) overrides the header.
    ``min_component_voxels``: smaller 3-D connected pieces of the mask are removed (0 keeps all).
    ``output_probability`` False still stages the probabilities in a temporary file in the output folder, and
    removes a probability map an earlier run left there. ``output_pieces``: also the mask's 3-D connected
    pieces as points about ``piece_spacing`` voxels apart, one group per piece (membrane_pieces), for tools
    that take single membranes; False removes a pieces file an earlier run left.
    """

    batch_size: int = 1  # tiles per forward pass; raise it on a GPU
    tile_size: int = 1024  # larger planes are cut into overlapping tiles; ~0.6 GB per 1024 px tile
    tile_overlap: int = 64
    chunk_slices: Optional[int] = None  # planes read, predicted and written at a time; None: ~32 MiB worth
    threshold: float = 0.5
    min_component_voxels: int = 100
    axes: Tuple[str, ...] = ("z",)
    voxel_size: Optional[float] = None
    device: str = "auto"
    output_probability: bool = True
    output_pieces: bool = False
    piece_spacing: int = 4


def output_names(tomogram_name: str) -> Dict[str, str]:
    return {
        "probability": f"{tomogram_name}_membrane_probability.mrc",
        "mask": f"{tomogram_name}_membrane_mask.mrc",
        "pieces": f"{tomogram_name}_membrane_pieces.csv",
        "record": f"{tomogram_name}_membrane_segmentation.json",
    }


def segment_tomogram(
    tomogram_path: os.PathLike, model_dir: os.PathLike, out_dir: os.PathLike, config: Optional[SegmentationConfig] = None
) -> Dict[str, Path]:
    """Write the membrane mask (and probability) of a tomogram; return their paths by kind."""
    config = config or SegmentationConfig()
    start_time = time.monotonic()
    model, model_record = load_membrane_model(model_dir)
    _check_config(config, model.config.size_multiple)
    tomogram = read_tomogram(tomogram_path, voxel_size=config.voxel_size)
    device = resolve_device(config.device)
    scale = tomogram.voxel_size / float(model_record["voxel_size_A"])
    predictor = SlicePredictor(model, scale, config.tile_size, config.tile_overlap, config.batch_size, device)
    if predictor.scale != 1.0:
        log.info("Planes resampled by %.3f to the model's %.3f A/voxel", predictor.scale, model_record["voxel_size_A"])
    out_dir = Path(out_dir)
    names = output_names(tomogram.name)
    outputs = {kind: out_dir / name for kind, name in names.items()}

    with contextlib.ExitStack() as stack:
        if config.output_probability:
            probability_path = stack.enter_context(atomic_path(outputs["probability"]))
        else:
            probability_path = stack.enter_context(temporary_path(outputs["probability"]))  # staged, never kept
        mask_path = stack.enter_context(atomic_path(outputs["mask"]))
        probability = stack.enter_context(new_mrc_volume(probability_path, tomogram.shape, np.float32, tomogram.voxel_size, tomogram.origin))
        mask = stack.enter_context(new_mrc_volume(mask_path, tomogram.shape, np.int8, tomogram.voxel_size, tomogram.origin))
        planes_per_second = _predict(tomogram, predictor, probability.data, config)
        slices = planes_per_chunk(tomogram.shape, "z", config.chunk_slices)
        progress = Progress("membrane mask (chunks)", -(-tomogram.shape[0] // slices))
        probability_stats, mask_stats = write_membrane_mask(
            probability.data, mask.data, config.threshold, config.min_component_voxels, slices, progress.step
        )
        probability_stats.write_header(probability)
        mask_stats.write_header(mask)
        pieces = membrane_pieces(mask.data, slices, config.piece_spacing) if config.output_pieces else None
    if not config.output_probability:  # an older run's map would pass for this run's
        outputs.pop("probability").unlink(missing_ok=True)
    if pieces is None:  # likewise an older run's pieces
        outputs.pop("pieces").unlink(missing_ok=True)
    else:
        write_pieces_csv(outputs["pieces"], pieces)
        log.info("%d membrane pieces, %d points", len(np.unique(pieces[:, 0])), len(pieces))

    elapsed = time.monotonic() - start_time
    log.info("Membranes cover %.2f%% of %s; segmented in %.1f s", 100 * mask_stats.mean, tomogram.name, elapsed)
    write_json(outputs["record"], {
        "cryodiffseg_version": __version__,
        "tomogram": str(tomogram.path.resolve()),
        "shape_zyx": list(tomogram.shape),
        "voxel_size_A": tomogram.voxel_size,
        "origin_xyz_A": list(tomogram.origin),
        "model": str(Path(model_dir).resolve()),
        "model_voxel_size_A": model_record["voxel_size_A"],
        "resampling": predictor.scale,
        "membrane_fraction": mask_stats.mean,
        "membrane_pieces": None if pieces is None else len(np.unique(pieces[:, 0])),
        "outputs": {kind: path.name for kind, path in outputs.items() if kind != "record"},
        "config": to_jsonable(dataclasses.asdict(config)),
        "planes_per_second": round(planes_per_second, 3),
        "elapsed_s": round(elapsed, 2),
    })
    return outputs


def write_pieces_csv(path: os.PathLike, pieces: np.ndarray) -> Path:
    """Rows piece, x, y, z (0-based voxels of the tomogram) of membrane_pieces."""
    lines = ["piece,x,y,z"] + [f"{int(piece)},{x:.2f},{y:.2f},{z:.2f}" for piece, x, y, z in pieces]
    return write_text(path, "\n".join(lines) + "\n")


def _predict(tomogram: Tomogram, predictor: SlicePredictor, probability: np.ndarray, config: SegmentationConfig) -> float:
    """Fill ``probability`` with the mean prediction over the configured axes; returns planes per second."""
    total = sum(tomogram.shape[AXES.index(axis)] for axis in config.axes)
    progress = Progress("membrane segmentation (planes)", total)
    began = time.monotonic()
    for done, axis in enumerate(config.axes):
        count = tomogram.shape[AXES.index(axis)]
        chunk = planes_per_chunk(tomogram.shape, axis, config.chunk_slices)
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            planes = read_planes(tomogram.data, axis, start, stop)
            release_pages(tomogram.data)
            predicted = predictor(planes)
            if done:  # running mean over the axes done so far
                previous = read_planes(probability, axis, start, stop)
                predicted = previous + (predicted - previous) / (done + 1)
            write_planes(probability, axis, start, predicted)
            release_pages(probability)
            progress.step(stop - start, detail=f"{axis} planes")
    return total / max(time.monotonic() - began, 1e-9)


def _check_config(config: SegmentationConfig, size_multiple: int) -> None:
    axes = tuple(config.axes)
    if not axes or len(set(axes)) != len(axes) or not set(axes) <= set(AXES):
        raise CryoDiffSegError(f"The axes must be distinct names among z, y and x, got {', '.join(axes) or 'none'}.")
    if not 0 < config.threshold < 1:
        raise CryoDiffSegError(f"The threshold must be between 0 and 1, got {config.threshold}.")
    if config.batch_size < 1 or (config.chunk_slices is not None and config.chunk_slices < 1) or config.min_component_voxels < 0:
        raise CryoDiffSegError("Batch size and chunk size must be at least 1 and the minimum component size not negative.")
    if config.tile_size < size_multiple or config.tile_size % size_multiple:
        raise CryoDiffSegError(f"The tile size must be a positive multiple of {size_multiple} px, got {config.tile_size}.")
    if not 0 <= config.tile_overlap < config.tile_size // 2:
        raise CryoDiffSegError(f"The tile overlap must be between 0 and {config.tile_size // 2 - 1} px, got {config.tile_overlap}.")
