"""Automatic slabs against manual-style choices of the same budget: the whole chain's accuracy, one run.

Per data set, the budget is the accuracy section's (one slab of its slices): the automatic selection over all
of the data set's tomograms, and ``choices`` seeded random manual-style slabs (a random tomogram, a random
contiguous range within the middle 80 % of its depth, where a person looking at it would stay). Each slab is
pseudo-labelled with the default settings; the same U-Net and picker are trained on it and run on every
tomogram. The final membrane Dice and pick F1 of the automatic choice (the median and the worst over the
selection's seeds) are reported beside the median and the worst of the random ones. Each finished choice's row is kept in ``finished`` (the results folder, which is
committed: the whole run takes hours), so an interrupted run resumes, and a changed selection re-runs only
the automatic choice.
"""

import json
import logging
import statistics
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from ..pseudolabel.slab_selection import SlabSelectionConfig, select_slabs
from ..records import write_json
from ..tomoio import read_tomogram
from .accuracy import RIBOSOME_DIAMETER_A, AccuracyBenchConfig, _fresh, _means, _train_and_apply, slab_for
from .datasets import Dataset

log = logging.getLogger("cryodiffseg")

MANUAL_RANGE = 0.8  # random slabs lie within this middle share of a tomogram's depth


def manual_style_slabs(depths: List[int], length: int, count: int, seed: int = 0) -> List[Tuple[int, int, int]]:
    """``count`` (tomogram index, first, last) slabs of ``length`` slices: a random tomogram, a random start
    within the middle MANUAL_RANGE of its depth."""
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(count):
        index = int(rng.integers(len(depths)))
        margin = round(depths[index] * (1 - MANUAL_RANGE) / 2)
        first = int(rng.integers(margin, max(margin, depths[index] - margin - length) + 1))
        chosen.append((index, first, first + length - 1))
    return chosen


def run_slab_bench(dataset: Dataset, work: Path, config: AccuracyBenchConfig, choices: int, finished: Path,
                   seeds: Sequence[int] = (0,)) -> dict:
    work, finished = Path(work), Path(finished)
    tomograms = [read_tomogram(t.tomogram, check_values=False) for t in dataset.tomograms]
    length = len(slab_for(tomograms[0].shape[0], config))
    shape = SlabSelectionConfig()  # the automatic choice's own slab length, within the same slice budget
    per_slab = min(shape.slices_per_slab, length)
    slabs, why = [], []
    for seed in seeds:  # the selection is seeded: each seed is one automatic choice
        selection = select_slabs(tomograms, SlabSelectionConfig(slabs=length // per_slab, slices_per_slab=per_slab, seed=seed))
        slabs.append((f"automatic seed {seed}", {i: selection.spec(i) for i in range(len(tomograms)) if selection.spec(i)}))
        why.append(f"seed {seed}: " + "; ".join(f"{dataset.tomograms[c.tomogram].name} {c.first}-{c.last}: {c.why}" for c in selection.chosen))
    slabs += [(f"random {k + 1}", {index: f"{first}-{last}"})
              for k, (index, first, last) in enumerate(manual_style_slabs([t.shape[0] for t in tomograms], length, choices))]
    radius = RIBOSOME_DIAMETER_A / 2 / dataset.voxel_size_A
    rows = []
    for label, specs in slabs:
        row = {"choice": label, "tomogram": ", ".join(dataset.tomograms[i].name for i in specs),
               "slab": "; ".join(specs.values()), "iterations": [config.membrane_training.iterations, config.picker_training.iterations]}
        folder = work / label.replace(" ", "-")
        done = finished / f"{folder.name}.json"  # an interrupted benchmark resumes after the last finished choice
        if done.is_file() and {k: v for k, v in json.loads(done.read_text()).items() if k in row} == row:
            log.info("Slab benchmark %s: %s already measured (%s)", dataset.name, label, done)
            rows.append(json.loads(done.read_text()))
            continue
        log.info("Slab benchmark %s: %s, %s slices %s", dataset.name, label, row["tomogram"], row["slab"])
        _fresh(folder)
        labels = []
        for index, spec in specs.items():
            labels.append(folder / "pseudolabels" / dataset.tomograms[index].name)
            run_pseudolabel(dataset.tomograms[index].tomogram, labels[-1], PseudoLabelConfig(slabs=spec))
        scores = _means(_train_and_apply(dataset, labels, folder, radius, config)["tomograms"])
        rows.append({**row, "dice": scores.get("dice"), "pick_f1": scores.get("pick_f1"), "pick_f1_labels": scores.get("pick_f1_labels")})
        write_json(done, rows[-1])
    return {"dataset": dataset.name, "slices_per_slab": length, "automatic_slabs": f"{length // per_slab} x {per_slab} slices",
            "automatic_why": " | ".join(why), "rows": rows, "summary": summarise(rows)}


def summarise(rows: List[dict]) -> dict:
    """The automatic choices' median and worst beside the median and the worst random choice, and how many
    random choices score below the automatic median."""
    automatic = [r for r in rows if r["choice"].startswith("automatic")]
    random = [r for r in rows if not r["choice"].startswith("automatic")]
    summary = {}
    for key in ("dice", "pick_f1", "pick_f1_labels"):
        values = [r[key] for r in random if r.get(key) is not None]
        ours = [r[key] for r in automatic if r.get(key) is not None]
        if not ours or not values:
            continue
        median = round(statistics.median(ours), 3)
        summary[key] = {"automatic": median, "automatic_worst": min(ours), "automatic_seeds": len(ours),
                        "random_median": round(statistics.median(values), 3),
                        "random_worst": min(values), "random_best": max(values),
                        "random_below_automatic": sum(v < median for v in values), "random": len(values)}
    return summary
