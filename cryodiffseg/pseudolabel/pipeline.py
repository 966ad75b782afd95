"""The pseudo-label pipeline for one tomogram: slabs -> attention -> eigen-maps -> canvases -> masks, points.

Membranes come from the attention canvas (the paper's way), from the image's sheet evidence (the default:
measured far better with the backbones that run offline, BENCHMARKS.md), or from both combined; the
macromolecule points always come from the canvas.

Eigen-maps are cached per slice under ``out/cache`` with a fingerprint of everything that shapes them,
so a re-run that changes only canvas, threshold, split or point parameters recomputes no attention.
"""

import csv
import dataclasses
import hashlib
import io
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
from scipy import ndimage as ndi

from .. import __version__
from ..errors import CryoDiffSegError
from ..features.backbone import BackboneConfig, resolve_source
from ..features.extract import FeatureConfig, default_max_timestep
from ..progress import Progress
from ..records import to_jsonable, write_json
from ..spectral import DirectSolverConfig, PaperSolverConfig
from ..tomoio import Tomogram, atomic_path, read_tomogram, write_mrc, write_text
from .blobs import BlobConfig, BlobPoints, particle_points
from .canvas import CanvasConfig, build_canvas
from .manifest import MANIFEST
from .masks import InstanceSplitter, MaskConfig, binarize, separate_membranes
from .points import PointConfig, deduplicate, drop_crowded, patch_points
from .preprocess import PreprocessConfig, preprocess_slice
from .qc import write_slab_figure
from .sheets import SheetConfig, SheetEvidence, attention_weights, membrane_sheets
from .slab_selection import auto_slabs
from .slabs import parse_slabs, slab_slices
from .tiling import TileLayout, jpeg_round_trip, plan_tiles
from .zconsistency import ZConsistencyConfig, correct_z

log = logging.getLogger("cryodiffseg")

SOLVERS = ("direct", "paper")
# Where the membrane pseudo-mask comes from: the attention canvas's non-round instances (the paper), the
# image's sheet evidence, or the sheet evidence weighted by the canvas.
MEMBRANE_SOURCES = ("sheets", "attention", "both")
# Where the pseudo-points come from: dark blobs of the particle's size, the canvas's round instances (the
# paper), or the blobs that lie on round canvas instances.
PARTICLE_SOURCES = ("blobs", "attention", "both")


@dataclass
class PseudoLabelConfig:
    slabs: str
    preset: str = "default"  # the named settings this configuration started from (presets.PRESETS)
    voxel_size: Optional[float] = None  # Angstrom; None: from the header
    membranes: str = "sheets"  # one of MEMBRANE_SOURCES
    particles: str = "blobs"  # one of PARTICLE_SOURCES
    solver: str = "direct"
    tiling: str = "native"
    tile_overlap: Optional[int] = None  # None: 1/4 of the tile
    tile_size: Optional[int] = None  # None: the backbone's input size
    tile_jpeg_quality: int = 0  # 0: model-input tiles stay lossless; 1-100: a JPEG round trip, as the reference's files
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    direct: DirectSolverConfig = field(default_factory=DirectSolverConfig)
    paper: PaperSolverConfig = field(default_factory=PaperSolverConfig)
    canvas: CanvasConfig = field(default_factory=CanvasConfig)
    zconsistency: ZConsistencyConfig = field(default_factory=ZConsistencyConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    points: PointConfig = field(default_factory=PointConfig)
    sheets: SheetConfig = field(default_factory=SheetConfig)
    blobs: BlobConfig = field(default_factory=BlobConfig)


@dataclass
class PseudoLabelResult:
    manifest: Path
    mask: Path
    points: Path
    qc: List[Path]
    labelled_slices: List[int]
    num_points: int


def output_names(tomogram_name: str) -> Dict[str, str]:
    return {
        "mask": f"{tomogram_name}_membrane_pseudomask.mrc",
        "points": f"{tomogram_name}_pseudopoints.csv",
        "manifest": MANIFEST,
        "canvases": f"cache/{tomogram_name}_canvases.npz",
        "calibration_points": f"{tomogram_name}_calibration_points.csv",
    }


def run_pseudolabel(tomogram_path, out_dir, config: PseudoLabelConfig) -> PseudoLabelResult:
    start = time.monotonic()
    _validate(config)
    tomogram = read_tomogram(tomogram_path, voxel_size=config.voxel_size)
    out_dir = Path(out_dir)
    selection, selection_qc = None, []
    if config.slabs.strip().lower() == "auto":  # slab_selection: inside the sample, the most typical slab
        spec, selection, figure = auto_slabs(tomogram, out_dir / "qc")
        log.info("Automatic slabs for %s: %s (%s)", tomogram.name, spec, selection["order"][0]["why"])
        config, selection_qc = dataclasses.replace(config, slabs=spec), [figure]
    slabs = parse_slabs(config.slabs, tomogram.shape[0])
    z_list = slab_slices(slabs)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("Pseudo-labelling %d slices of %s in %d slab(s): %s (membranes from %s, particles from %s)",
             len(z_list), tomogram.name, len(slabs), config.slabs, config.membranes, config.particles)

    images = {z: preprocess_slice(np.asarray(tomogram.data[z], dtype=np.float32), config.preprocess) for z in z_list}
    attention, backbone = None, {"source": None, "reason": "not needed: no attention canvas is used"}
    if uses_attention(config):
        source, reason = resolve_source(config.backbone.source)
        if source != config.backbone.source:  # the record and the cache name the model that ran
            log.info("Backbone %s (%s)", source, reason)
            config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, source=source))
        backbone = {"source": source, "reason": reason}
        attention = _attention_canvases(tomogram, images, z_list, out_dir, config)

    sheets = None
    if config.membranes != "attention":
        weights = _attention_weight_maps(attention.layout, attention.corrected, config.sheets.attention_weight) if config.membranes == "both" else None
        sheets = membrane_sheets(tomogram.data, z_list, tomogram.voxel_size_nm, config.sheets, weights)
    instances = _canvas_instances(attention, sheets, tomogram, z_list, config) if attention is not None else None
    missing = _slices_missing_a_canvas(attention, config)
    if missing:
        log.warning("%d slice(s) left unlabelled: a tile of theirs has no canvas (every eigen-map too fragmented): %s",
                    len(missing), ", ".join(str(z) for z in sorted(missing)))
    if len(missing) == len(z_list):
        raise CryoDiffSegError(f"No slice of {config.slabs} got a canvas for every tile, so none can be labelled: choose "
                               "other slabs, or take membranes and particles from the image (--membranes sheets --particles blobs).")
    z_list = [z for z in z_list if z not in missing]

    mask_volume = np.zeros(tomogram.shape, dtype=np.int8)
    for z in z_list:
        mask_volume[z] = sheets.masks[z] if sheets is not None else instances.membranes[z]
    blobs = particle_points(tomogram.data, z_list, tomogram.voxel_size_nm, config.blobs) if config.particles != "attention" else None
    if config.particles == "attention":
        points = instances.points
    elif config.particles == "both":
        points = blobs.points[_on_instances(blobs.points, instances.macromolecules, blobs.radius_px)]
        log.info("%d of %d blob centres lie on round instances of the attention canvas", len(points), len(blobs.points))
    else:
        points = blobs.points
    if missing and config.particles != "blobs":  # the canvas points of an unlabelled slice go with it
        points = points[~np.isin(np.rint(points[:, 2]), sorted(missing))]
    per_slice = {str(z): {"mask_fraction": float(mask_volume[z].mean()),
                          "points": int(np.sum(np.rint(points[:, 2]) == z)) if len(points) else 0} for z in z_list}

    names = output_names(tomogram.name)
    outputs = {"membrane_mask": names["mask"], "points": names["points"]}
    mask_path = write_mrc(out_dir / names["mask"], mask_volume, tomogram.voxel_size, tomogram.origin)
    points_path = _write_points(out_dir / names["points"], points)
    if blobs is not None:
        _write_points(out_dir / names["calibration_points"], blobs.calibration_points)
        outputs["calibration_points"] = names["calibration_points"]
    if attention is not None:
        _write_canvases(out_dir / names["canvases"], attention.layout, sorted(attention.corrected), attention.canvases, attention.corrected)
    reach = blobs.radius_px if blobs is not None else 0.0  # blob centres need not lie on a labelled slice
    qc_paths = _write_qc(out_dir, tomogram, slabs, images, attention, mask_volume, points, sheets, reach) + selection_qc
    outputs["qc"] = [p.name for p in qc_paths]
    manifest = {
        "cryodiffseg_version": __version__,
        "tomogram": str(Path(tomogram_path).resolve()),
        "tomogram_name": tomogram.name,
        "shape_zyx": list(tomogram.shape),
        "voxel_size_A": tomogram.voxel_size,
        "origin_xyz_A": list(tomogram.origin),
        "slabs": [list(s) for s in slabs],
        "slab_selection": selection,  # None: the slabs were given
        "labelled_slices": z_list,
        "calibration_slices": blobs.calibration_slices if blobs is not None else [],
        "outputs": outputs,
        "points": int(len(points)),
        "unlabelled_slices": {str(z): tiles for z, tiles in sorted(missing.items())},  # z: tiles without a canvas
        "z_outliers_replaced": sorted(int(z) for z in attention.replaced) if attention is not None else [],
        "splitter": instances.splitter if instances is not None else None,
        "backbone": backbone,
        "membranes": _membrane_record(config, sheets),
        "particles": _particle_record(config, blobs),
        "features": attention.feature_info if attention is not None else None,
        "per_slice": per_slice,
        "config": to_jsonable(asdict(config)),
        "environment": environment_summary(),
        "elapsed_s": round(time.monotonic() - start, 2),
    }
    manifest_path = write_json(out_dir / names["manifest"], manifest)
    log.info("Wrote %s, %s, %s and %d QC figure(s) in %s", mask_path.name, points_path.name, manifest_path.name, len(qc_paths), out_dir)
    return PseudoLabelResult(manifest_path, mask_path, points_path, qc_paths, z_list, int(len(points)))


def uses_attention(config: PseudoLabelConfig) -> bool:
    """Whether the diffusion model runs at all: only the attention canvas needs it."""
    return config.membranes != "sheets" or config.particles != "blobs"


def _validate(config: PseudoLabelConfig) -> None:
    """Every setting checked before any work."""
    if config.solver not in SOLVERS:
        raise CryoDiffSegError(f"Unknown solver '{config.solver}': use one of {', '.join(SOLVERS)}.")
    if config.membranes not in MEMBRANE_SOURCES:
        raise CryoDiffSegError(f"Unknown membrane source '{config.membranes}': use one of {', '.join(MEMBRANE_SOURCES)}.")
    if config.particles not in PARTICLE_SOURCES:
        raise CryoDiffSegError(f"Unknown particle source '{config.particles}': use one of {', '.join(PARTICLE_SOURCES)}.")
    config.sheets.validate()
    config.blobs.validate()
    config.masks.validate()
    config.features.validate()
    if config.tile_size is not None and config.tile_size < 1:
        raise CryoDiffSegError(f"The tile size must be positive, got {config.tile_size} px.")
    if not 0 <= config.tile_jpeg_quality <= 100:
        raise CryoDiffSegError(f"The tiles' JPEG quality must be 0 (lossless) to 100, got {config.tile_jpeg_quality}.")
    if config.tile_overlap is not None and not 0 <= config.tile_overlap < (config.tile_size or float("inf")):
        raise CryoDiffSegError(f"The tile overlap must be at least 0 and less than the tile size, got {config.tile_overlap} px.")


def _check_fits_backbone(backbone, tile_size: int, config: PseudoLabelConfig) -> None:
    """What only the loaded backbone can tell, checked before its first attention pass."""
    multiple = backbone.size_multiple
    if tile_size < multiple or tile_size % multiple:
        raise CryoDiffSegError(f"The tile size must be a multiple of {multiple} px for the backbone {backbone.name}, got {tile_size}.")
    grid = backbone.attention_grid(tile_size)
    maps = config.direct.num_maps if config.solver == "direct" else config.paper.num_maps
    if maps >= grid * grid:
        raise CryoDiffSegError(f"{maps} eigen-maps need more than the {grid} x {grid} attention grid of {tile_size}-px tiles: "
                               "use a larger --tile-size.")
    config.features.validate(backbone.num_train_timesteps)


@dataclass
class AttentionCanvases:
    """The attention canvases of the labelled slices, per tile, before and after the z correction."""

    layout: TileLayout
    canvases: Dict[int, List[Optional[np.ndarray]]]
    corrected: Dict[int, List[Optional[np.ndarray]]]
    replaced: set
    feature_info: dict


@dataclass
class CanvasInstances:
    """What the canvases' instance split gives: membrane masks, round-instance masks and points, per slice."""

    membranes: Dict[int, np.ndarray]
    macromolecules: Dict[int, np.ndarray]
    points: np.ndarray  # (n, 3) x, y, z, de-duplicated in 3-D
    splitter: str


def _attention_canvases(tomogram: Tomogram, images, z_list, out_dir: Path, config: PseudoLabelConfig) -> AttentionCanvases:
    """Eigen-maps -> canvas per tile -> z-consistency per tile position across neighbouring slices."""
    eigenmaps, layout, feature_info = _eigenmaps(tomogram, images, out_dir, config)
    canvas_config = dataclasses.replace(config.canvas, output_size=layout.tile_size)
    canvases = {z: [_canvas_image(build_canvas(maps, canvas_config)) for maps in eigenmaps[z]] for z in z_list}
    corrected: Dict[int, List[Optional[np.ndarray]]] = {z: [None] * len(layout.tiles) for z in z_list}
    replaced = set()
    for t in range(len(layout.tiles)):
        fixed, outliers = correct_z({z: canvases[z][t] for z in z_list}, config.zconsistency)
        for z, image in fixed.items():
            corrected[z][t] = image
        replaced.update(outliers)
    return AttentionCanvases(layout, canvases, corrected, replaced, feature_info)


def _canvas_instances(attention: AttentionCanvases, sheets: Optional[SheetEvidence], tomogram: Tomogram, z_list,
                      config: PseudoLabelConfig) -> CanvasInstances:
    """Threshold, split and sort the canvases' instances; points keep their distance from the final membranes."""
    layout = attention.layout
    splitter = InstanceSplitter(config.masks)
    membranes, macromolecule_masks, points_xyz = {}, {}, []
    progress = Progress("canvas instances and points", len(z_list))
    for z in z_list:
        tile_membranes = np.zeros((len(layout.tiles), layout.tile_size, layout.tile_size), dtype=np.uint8)
        tile_round = np.zeros_like(tile_membranes)
        sheet_tiles = layout.extract(sheets.masks[z].astype(np.float32)) > 0.5 if sheets is not None else None
        slice_points = []
        for t, canvas in enumerate(attention.corrected[z]):
            if canvas is None:
                continue
            binary = binarize(canvas, config.masks)
            labels = splitter.split(binary)
            membrane, macromolecules = separate_membranes(binary, labels, config.masks)
            tile_membranes[t], tile_round[t] = membrane, macromolecules > 0
            found = patch_points(macromolecules, sheet_tiles[t] if sheet_tiles is not None else membrane,
                                 tomogram.voxel_size_nm, config.points)
            found = drop_crowded(found, config.points.crowding_distance)
            found = layout.to_slice(t, found)
            slice_points.append(np.trunc(found) if config.points.integer_coordinates else found)
        membranes[z] = layout.stitch(tile_membranes)
        macromolecule_masks[z] = layout.stitch(tile_round).astype(bool)
        slice_points = np.concatenate(slice_points) if slice_points else np.zeros((0, 2))
        if len(slice_points):
            points_xyz.append(np.column_stack([slice_points, np.full(len(slice_points), z)]))
        progress.step()
    points = np.concatenate(points_xyz) if points_xyz else np.zeros((0, 3))
    dedup_radius = config.points.dedup_radius(tomogram.voxel_size_nm)
    points = deduplicate(points, dedup_radius, config.points.dedup_mode)
    log.info("%d canvas points after 3-D de-duplication within %d px; splitter: %s", len(points), dedup_radius, splitter.method)
    return CanvasInstances(membranes, macromolecule_masks, points, splitter.method)


def _slices_missing_a_canvas(attention: Optional[AttentionCanvases], config: PseudoLabelConfig) -> Dict[int, List[int]]:
    """Slices whose labels would need a canvas that some tile lacks, with those tiles. Such a slice is left
    unlabelled, as the reference leaves it: an empty tile would teach the networks that whatever lies there is
    background. Membranes weighted by the canvas (``both``) take a missing tile as neutral and need none."""
    if attention is None or (config.membranes != "attention" and config.particles == "blobs"):
        return {}
    return {z: [t for t, canvas in enumerate(tiles) if canvas is None]
            for z, tiles in attention.corrected.items() if any(canvas is None for canvas in tiles)}


def _on_instances(points_xyz: np.ndarray, masks: Dict[int, np.ndarray], radius: float) -> np.ndarray:
    """Which points lie within half a radius of a round canvas instance on their nearest labelled slice."""
    labelled = np.array(sorted(masks))
    grown = {z: ndi.binary_dilation(m, iterations=max(1, int(radius / 2))) for z, m in masks.items()}
    keep = np.zeros(len(points_xyz), dtype=bool)
    for i, (x, y, z) in enumerate(points_xyz):
        nearest = int(labelled[np.argmin(np.abs(labelled - z))])
        keep[i] = grown[nearest][int(round(y)), int(round(x))]
    return keep


def _particle_record(config: PseudoLabelConfig, blobs: Optional[BlobPoints]) -> dict:
    """Where the pseudo-points came from, for the record and for the Methods text of the plugin."""
    record = {"source": config.particles}
    if blobs is not None:
        record.update(radius_px=round(blobs.radius_px, 3), calibration_points=int(len(blobs.calibration_points)),
                      noise_levels=[round(n, 6) for n in blobs.noise_levels])
    return record


def _membrane_record(config: PseudoLabelConfig, sheets: Optional[SheetEvidence]) -> dict:
    """Where the membrane mask came from, for the record and for the Methods text of the plugin."""
    record = {"source": config.membranes}
    if sheets is not None:
        record.update(sheet_scale_px=round(sheets.sigma_px, 3), sheet_depth_px=sheets.depth_px,
                      noise_levels=[round(n, 6) for n in sheets.noise_levels])
    return record


def _attention_weight_maps(layout: TileLayout, corrected, weight: float) -> Dict[int, np.ndarray]:
    """Per slice, the canvas darkness as a weight of the sheet evidence (tiles without a canvas: neutral)."""
    maps = {}
    for z, per_tile in corrected.items():
        present = [c for c in per_tile if c is not None]
        if not present:
            maps[z] = np.ones(layout.slice_shape, dtype=np.float32)
            continue
        fill = float(np.mean([c.mean() for c in present]))
        tiles = np.stack([c.astype(np.float32) if c is not None else np.full((layout.tile_size,) * 2, fill, np.float32) for c in per_tile])
        maps[z] = attention_weights(layout.stitch(tiles, interpolation=cv2.INTER_LINEAR), weight)
    return maps


def _canvas_image(result) -> Optional[np.ndarray]:
    return None if result is None else result.image


def _eigenmaps(tomogram: Tomogram, images: Dict[int, np.ndarray], out_dir: Path, config: PseudoLabelConfig):
    """Eigen-maps (n_tiles, C, g, g) per slice, from the cache when its fingerprint matches."""
    from ..features.backbone import load_backbone
    from ..features.extract import tile_attention
    from ..spectral import direct_eigenmaps, paper_eigenmaps

    fingerprint = _feature_fingerprint(tomogram, config)
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    # One folder per feature setting: other settings' maps stay usable, nothing is ever deleted.
    cache = out_dir / "cache" / "eigenmaps" / key
    cache.mkdir(parents=True, exist_ok=True)
    info_path = cache / "fingerprint.json"
    stored = json.loads(info_path.read_text()) if info_path.is_file() else {}

    files = {z: _slice_cache_file(cache, z, image) for z, image in images.items()}
    todo = [z for z in images if not files[z].is_file()]
    backbone = load_backbone(config.backbone) if todo else None
    tile_size = config.tile_size or (backbone.input_size if backbone else stored["tile_size"])
    if backbone is not None:
        _check_fits_backbone(backbone, tile_size, config)
    write_text(info_path, json.dumps({**fingerprint, "key": key, "tile_size": tile_size}, indent=2))
    layout = plan_tiles(images[next(iter(images))].shape, tile_size, config.tiling, config.tile_overlap)
    if todo:
        log.info("Computing eigen-maps for %d slice(s) x %d tile(s) (%d cached); solver %s", len(todo), len(layout.tiles), len(images) - len(todo), config.solver)
    else:
        log.info("All %d slices' eigen-maps read from the cache %s", len(images), cache)
    progress = Progress("attention + eigen-maps (tiles)", len(todo) * len(layout.tiles))
    for z in todo:
        tiles = layout.extract(images[z])
        if config.tile_jpeg_quality:
            tiles = jpeg_round_trip(tiles, config.tile_jpeg_quality)
        samples = tile_attention(
            backbone, tiles, tomogram.voxel_size_nm, config.features, keep_heads=config.solver == "paper", seed_offset=z
        )
        maps = []
        for i, tile_samples in enumerate(samples):
            if config.solver == "paper":
                maps.append(paper_eigenmaps(tile_samples, config.paper, device=str(backbone.device), progress_label=f"paper solver z={z} tile {i}"))
            else:
                maps.append(direct_eigenmaps(tile_samples, config.direct))
            progress.step()
        with atomic_path(files[z]) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.stack(maps))
    eigenmaps = {z: np.load(files[z]) for z in images}
    info = {**fingerprint, "cache": str(cache), "computed_slices": len(todo), "cached_slices": len(images) - len(todo), "tile_size": tile_size}
    return eigenmaps, layout, info


def _slice_cache_file(cache: Path, z: int, image: np.ndarray) -> Path:
    """The eigen-map file of a slice, named by its content too: another tomogram under the same name, shape
    and voxel size never reads this one's maps."""
    content = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:12]
    return cache / f"z{z:04d}-{content}.npy"


def _feature_fingerprint(tomogram: Tomogram, config: PseudoLabelConfig) -> dict:
    """Everything that changes the eigen-maps of a slice."""
    solver = asdict(config.direct) if config.solver == "direct" else asdict(config.paper)
    features = asdict(config.features)
    if features["max_timestep"] is None:
        features["max_timestep"] = default_max_timestep(tomogram.voxel_size_nm)
    return {
        "tomogram": tomogram.name,
        "shape_zyx": list(tomogram.shape),
        "voxel_size_A": tomogram.voxel_size,
        "backbone": config.backbone.source,
        "backbone_dtype": config.backbone.dtype,
        "tiling": config.tiling,
        "tile_overlap": config.tile_overlap,
        "tile_size": config.tile_size,
        "tile_jpeg_quality": config.tile_jpeg_quality,
        "preprocess": asdict(config.preprocess),
        "features": features,
        "solver": config.solver,
        "solver_settings": solver,
    }


def _write_points(path: Path, points: np.ndarray) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["x", "y", "z"])
    for x, y, z in points:
        writer.writerow([f"{x:.2f}", f"{y:.2f}", int(z)])
    return write_text(path, buffer.getvalue())


def _write_canvases(path: Path, layout: TileLayout, z_list, canvases, corrected) -> None:
    def stitched(per_tile):
        tiles = np.stack([c if c is not None else np.zeros((layout.tile_size,) * 2, np.uint8) for c in per_tile])
        return layout.stitch(tiles)

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            z=np.array(z_list),
            canvas=np.stack([stitched(canvases[z]) for z in z_list]),
            corrected=np.stack([stitched(corrected[z]) for z in z_list]),
        )


def _write_qc(out_dir, tomogram, slabs, images, attention: Optional[AttentionCanvases], mask_volume, points, sheets,
              reach: float) -> List[Path]:
    """One figure per slab, of its middle slice, with the points whose particle cuts that slice."""
    paths = []
    for i, (first, last) in enumerate(slabs):
        z = (first + last) // 2
        canvas = None
        if attention is not None:
            layout = attention.layout
            tiles = np.stack([c if c is not None else np.zeros((layout.tile_size,) * 2, np.uint8) for c in attention.corrected[z]])
            canvas = layout.stitch(tiles, interpolation=1)
        near = points[np.abs(points[:, 2] - z) <= max(1, (last - first) // 2, reach)] if len(points) else points
        path = out_dir / "qc" / f"{tomogram.name}_slab{i + 1}_z{first}-{last}.png"
        write_slab_figure(
            path,
            f"{tomogram.name}  slab {first}-{last}, slice z={z}  ({tomogram.voxel_size:.2f} A/voxel)",
            images[z],
            canvas,
            mask_volume[z],
            near[:, :2],
            sheets.response[z] if sheets is not None else None,
        )
        paths.append(path)
    return paths


def environment_summary() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
