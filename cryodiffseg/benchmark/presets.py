"""What the paper preset's settings cost or gain against the default's: pseudo-labels of the same slab, one run.

The preset's own backbone (Stable Diffusion v1.4) cannot be downloaded here, so every row runs the backbone the
benchmark is given; CellPose's weights are absent too, so the preset's instance split is the watershed
(``--splitter auto``). Two rows ask whether the eigenvectors' sign convention matters (the direct solver fixes
each sign, the reference's SVD basis leaves it arbitrary): the direct-solver maps of the preset row with every
sign flipped, and with random signs, read back through the eigen-map cache so that nothing else changes.
"""

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..evaluation import evaluate_mask
from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from ..pseudolabel.presets import apply_preset
from ..spectral import PaperSolverConfig
from ..tomoio import read_tomogram
from .accuracy import RIBOSOME_DIAMETER_A, AccuracyBenchConfig, _fresh, _mask_scores, _point_scores, _slug, slab_for
from .datasets import Dataset

log = logging.getLogger("cryodiffseg")


@dataclass(frozen=True)
class PresetRow:
    """One setting: a preset, options on top of it, and optionally the sign rule applied to another row's maps."""

    label: str
    preset: str
    options: Dict[str, object]
    signs_of: Optional[str] = None  # label of the row whose cached eigen-maps are re-signed
    signs: str = ""  # "flipped": every map negated; "random": each map's sign drawn (seed 0)


def preset_rows(with_paper_solver: bool) -> List[PresetRow]:
    direct = "paper preset with the direct solver (reference layer weights 0.9)"
    rows = [
        PresetRow("default (sheet and blob evidence, no model)", "default", {}),
        PresetRow("default settings, attention canvas for both", "default", {"membranes": "attention", "particles": "attention"}),
        PresetRow(direct, "paper", {"solver": "direct"}),
        PresetRow("as above, every eigenvector's sign flipped", "paper", {"solver": "direct"}, signs_of=direct, signs="flipped"),
        PresetRow("as above, random eigenvector signs (seed 0)", "paper", {"solver": "direct"}, signs_of=direct, signs="random"),
    ]
    if with_paper_solver:
        rows.append(PresetRow("paper preset (its own solver)", "paper", {}))
    return rows


def run_preset_bench(dataset: Dataset, work: Path, backbone: str, rows: List[PresetRow], paper: PaperSolverConfig) -> dict:
    """Pseudo-label Dice and point precision of each row on the slab the accuracy benchmark labels."""
    work = Path(work)
    reference = dataset.tomograms[0]
    depth = read_tomogram(reference.tomogram, check_values=False).shape[0]
    slab = slab_for(depth, AccuracyBenchConfig(variants=[]))
    radius = RIBOSOME_DIAMETER_A / 2 / dataset.voxel_size_A
    folders: Dict[str, Path] = {}
    results = []
    for row in rows:
        log.info("Preset benchmark %s: %s", dataset.name, row.label)
        folder = _fresh(work / _slug(row.label))
        config = row_config(row, f"{slab[0]}-{slab[-1]}", backbone, paper)
        if row.signs_of:
            _resigned_cache(folders[row.signs_of] / "cache", folder / "cache", row.signs)
        start = time.monotonic()
        result = run_pseudolabel(reference.tomogram, folder, config)
        folders[row.label] = folder
        features = json.loads(result.manifest.read_text())["features"] or {}
        scores = {"method": row.label, "preset": row.preset, "options": row.options, "signs": row.signs or "as solved",
                  "seconds": round(time.monotonic() - start, 1), "labelled_slices": len(result.labelled_slices),
                  "eigenmap_slices_computed": features.get("computed_slices"),
                  "membrane": _mask_scores(evaluate_mask(result.mask, reference.membrane, slab))}
        if reference.particles is not None:
            scores["points"] = _point_scores(folder, reference, radius)
        results.append(scores)
    return {"dataset": dataset.name, "slab": f"{slab[0]}-{slab[-1]}", "slab_slices": len(slab), "backbone": backbone, "rows": results}


def row_config(row: PresetRow, slabs: str, backbone: str, paper: PaperSolverConfig) -> PseudoLabelConfig:
    """The row's preset with its options, the benchmark's backbone and the splitter that runs offline."""
    config = apply_preset(PseudoLabelConfig(slabs=slabs), row.preset)
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, source=backbone),
                                 masks=dataclasses.replace(config.masks, splitter="auto"),
                                 paper=dataclasses.replace(config.paper, iterations=paper.iterations), **row.options)
    return config


def _resigned_cache(source: Path, target: Path, signs: str) -> None:
    """A copy of an eigen-map cache with the maps' signs changed (files are (tiles, maps, g, g) per slice)."""
    shutil.copytree(source, target)
    rng = np.random.default_rng(0)
    for path in sorted(target.glob("eigenmaps/*/z*.npy")):
        maps = np.load(path)
        if signs == "flipped":
            factors = -np.ones(maps.shape[:2])
        else:
            factors = rng.choice([-1.0, 1.0], size=maps.shape[:2])
        np.save(path, maps * factors[:, :, None, None].astype(maps.dtype))
