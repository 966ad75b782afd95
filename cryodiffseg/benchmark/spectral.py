"""Spectral step: the `direct` and `paper` solvers on identical captured attention.

Attention (all heads) is captured once per tile; both solvers then run on exactly those samples, each
timed separately. Reported: per-tile times (median over tiles), the speed ratio, and the subspace
agreement (mean cosine of the principal angles between the two sets of 12 maps). The same measures on
attention with a known, well-separated spectrum (``operators``) tell a solver gap from an operator whose
12-map subspace is barely determined. Last, the pseudo-label stage runs on one slice of the same phantom
once per solver, so the maps' disagreement is also seen where it matters: in the labels.
"""

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation import evaluate_points, read_mask
from ..evaluation.metrics import segmentation_metrics
from ..features.backbone import BackboneConfig, load_backbone, resolve_device
from ..features.extract import FeatureConfig, tile_attention
from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from ..pseudolabel.preprocess import preprocess_slice
from ..pseudolabel.tiling import plan_tiles
from ..spectral import (
    DirectSolverConfig,
    PaperSolverConfig,
    direct_eigenmaps,
    paper_eigenmaps,
    pooled_operator,
    subspace_agreement,
)
from ..spectral.direct import leading_eigenvectors
from ..synthetic import PhantomConfig, generate_phantom, write_phantom
from .accuracy import RIBOSOME_DIAMETER_A
from .operators import reference_samples


@dataclass
class SpectralBenchConfig:
    backbone: str = "compact"
    tiles: int = 3
    num_samples: int = 4
    paper_iterations: int = 2000
    seed: int = 0
    random_weights: bool = False  # say so in the report when the backbone is an untrained test model
    device: str = "auto"  # backbone and paper solver, as in the pipeline; the direct solver runs on the CPU


def run_spectral_bench(config: SpectralBenchConfig, work: Path) -> dict:
    backbone = load_backbone(BackboneConfig(source=config.backbone, device=config.device))
    size = backbone.input_size
    phantom = generate_phantom(PhantomConfig(shape=(24, 2 * size, 2 * size), seed=config.seed))
    image = preprocess_slice(phantom.tomogram[12])
    layout = plan_tiles(image.shape, size, "native", overlap=0)
    tiles = layout.extract(image)[: config.tiles]
    samples = list(tile_attention(backbone, tiles, phantom.voxel_size / 10, FeatureConfig(num_samples=config.num_samples), keep_heads=True))
    rows = [_compare_solvers(tile_samples, config) for tile_samples in samples]
    first = samples[0][0]
    finest = max(layer.grid for layer in first.values())
    return {
        "backbone": backbone.name,
        "device": str(backbone.device),
        "random_weights": config.random_weights,
        "tile_px": size,
        "layers": len(first),
        "grids": sorted({layer.grid for layer in first.values()}, reverse=True),
        "heads": sorted({int(layer.probs.shape[0]) for layer in first.values()}),
        "tiles": len(rows),
        "num_samples": config.num_samples,
        "paper_iterations": config.paper_iterations,
        "direct_s_median": statistics.median(r["direct_s"] for r in rows),
        "paper_s_median": statistics.median(r["paper_s"] for r in rows),
        "speed_ratio_median": statistics.median(r["paper_s"] / r["direct_s"] for r in rows),
        "agreement_mean": float(np.mean([r["agreement"] for r in rows])),
        "agreement_min": float(np.min([r["agreement"] for r in rows])),
        "paper_rayleigh_fraction_mean": float(np.mean([r["paper_rayleigh_fraction"] for r in rows])),
        "eigenvalues_first_tile": rows[0]["eigenvalues"],
        "per_tile": rows,
        "reference": [
            {"attention": kind, "grid": finest, **_compare_solvers(reference_samples(kind, finest), config)}
            for kind in ("local", "regions")
        ],
        "labels": _labels_by_solver(phantom, Path(work), config),
    }


def _labels_by_solver(phantom, work: Path, config: SpectralBenchConfig) -> dict:
    """Pseudo-labels of the phantom's middle slice from each solver's maps (same attention), against the truth."""
    paths = write_phantom(phantom, work / "phantom")
    z = phantom.tomogram.shape[0] // 2
    radius = RIBOSOME_DIAMETER_A / 2 / phantom.voxel_size
    truth = read_mask(paths["membrane"])[0]
    rows, masks = {}, {}
    for solver in ("direct", "paper"):
        start = time.perf_counter()
        result = run_pseudolabel(paths["tomogram"], work / solver, PseudoLabelConfig(
            slabs=str(z),
            solver=solver,
            backbone=BackboneConfig(source=config.backbone, device=config.device),
            features=FeatureConfig(num_samples=config.num_samples),
            paper=PaperSolverConfig(iterations=config.paper_iterations, seed=config.seed),
        ))
        seconds = time.perf_counter() - start
        masks[solver] = read_mask(result.mask)[0]
        rows[solver] = {
            "membrane_dice": segmentation_metrics(masks[solver], truth, [z])["dice"],
            "points": result.num_points,
            "point_precision": evaluate_points(result.points, paths["particles"], radius)["precision"],
            "seconds": seconds,
        }
    return {"slice": z, "rows": rows, "mask_dice_between_solvers": segmentation_metrics(masks["paper"], masks["direct"], [z])["dice"]}


def _compare_solvers(tile_samples, config: SpectralBenchConfig) -> dict:
    """Both solvers on the same samples: times, agreement, Rayleigh share and the operator's leading spectrum."""
    start = time.perf_counter()
    direct = direct_eigenmaps(tile_samples, DirectSolverConfig())
    direct_s = time.perf_counter() - start
    start = time.perf_counter()
    paper = paper_eigenmaps(tile_samples, PaperSolverConfig(iterations=config.paper_iterations, seed=config.seed),
                            device=str(resolve_device(config.device)))
    paper_s = time.perf_counter() - start
    operator = pooled_operator(tile_samples)
    spectrum = leading_eigenvectors(operator, DirectSolverConfig(num_maps=13))[0]
    return {
        "direct_s": direct_s,
        "paper_s": paper_s,
        "agreement": subspace_agreement(direct, paper),
        # how much of the optimal sum of Rayleigh quotients the paper's maps reach
        "paper_rayleigh_fraction": _rayleigh_sum(operator, paper) / _rayleigh_sum(operator, direct),
        "eigenvalues": [round(float(v), 5) for v in spectrum],
    }


def _rayleigh_sum(operator, maps: np.ndarray) -> float:
    """trace(Q^T M Q) for an orthonormal basis Q of the maps' span: the objective both solvers maximise."""
    basis, _ = np.linalg.qr(np.asarray(maps, dtype=np.float64).reshape(len(maps), -1).T)
    return float(np.trace(basis.T @ operator.matmat(basis)))
