"""Accuracy of the whole chain against ground truth, with baselines, on the same data in one run.

Per data set: pseudo-label a slab (about 2 % of the slices) in the middle of the first tomogram, train the
membrane U-Net and the picker on it, segment and pick every tomogram, and score against the ground truth.
Baselines on the same tomograms: global Otsu and local adaptive thresholding (same clean-up), the blob
detector of the pseudo-label stage run over whole tomograms (a template-free picker), and the same U-Net and
picker trained on the TRUE labels of the same slab (the paper's supervised reference).
"""

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..evaluation import evaluate_mask, evaluate_points, picking_metrics, read_points
from ..features.backbone import BackboneConfig
from ..picking import PickerTrainingConfig, PickingConfig, pick_particles, train_picker
from ..pseudolabel.manifest import read_manifest
from ..pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from ..segmentation import MembraneTrainingConfig, SegmentationConfig, segment_tomogram, train_membrane_model
from ..spectral import PaperSolverConfig
from ..tomoio import read_tomogram, write_mrc
from .baselines import threshold_baseline
from .datasets import Dataset

log = logging.getLogger("cryodiffseg")

RIBOSOME_DIAMETER_A = 250.0
# What the default configuration must reach per data set (membrane Dice): on the pseudo-labelled slab, over all
# tomograms, as a share of the supervised U-Net of the same run, and above the best thresholding baseline.
MEMBRANE_TARGETS = {
    "generated": {"pseudolabel": 0.5, "final": 0.6, "ratio_to_supervised": None, "margin_over_thresholds": 0.2},
    "simulated (polnet)": {"pseudolabel": 0.4, "final": 0.55, "ratio_to_supervised": 0.8, "margin_over_thresholds": 0.2},
}
# Picking F1 the default must reach from pseudo-points, and the same picker from the true points of the slab.
PICK_TARGETS = {"generated": {"unsupervised": 0.7, "supervised": 0.75},
                "simulated (polnet)": {"unsupervised": 0.5, "supervised": 0.75}}
# Score thresholds the picks are also cut at (the picking run uses the default, the lowest of them): how much
# of the picking error is the threshold's.
SCORE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Variant:
    """One unsupervised pipeline setting to measure: where membranes come from, a backbone and a solver."""

    label: str
    backbone: str
    random_weights: bool = False
    solver: str = "direct"
    membranes: str = "sheets"
    particles: str = "blobs"


@dataclass
class AccuracyBenchConfig:
    variants: List[Variant]
    slab_fraction: float = 0.02
    min_slab_slices: int = 4
    num_samples: int = 4
    paper: PaperSolverConfig = field(default_factory=PaperSolverConfig)
    membrane_training: MembraneTrainingConfig = field(default_factory=MembraneTrainingConfig)
    picker_training: PickerTrainingConfig = field(default_factory=PickerTrainingConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    picking: PickingConfig = field(default_factory=PickingConfig)
    device: str = "cpu"


def slab_for(depth: int, config: AccuracyBenchConfig) -> List[int]:
    count = max(config.min_slab_slices, math.ceil(config.slab_fraction * depth))
    first = depth // 2 - count // 2
    return list(range(first, first + count))


def run_accuracy_bench(dataset: Dataset, work: Path, config: AccuracyBenchConfig) -> dict:
    work = Path(work)
    reference = dataset.tomograms[0]
    depth = read_tomogram(reference.tomogram, check_values=False).shape[0]
    slab = slab_for(depth, config)
    slab_spec = f"{slab[0]}-{slab[-1]}"
    radius = RIBOSOME_DIAMETER_A / 2 / dataset.voxel_size_A
    rows: List[dict] = []

    for variant in config.variants:
        log.info("Accuracy benchmark %s: %s", dataset.name, variant.label)
        folder = _fresh(work / _slug(variant.label))
        start = time.monotonic()
        pseudo = run_pseudolabel(
            reference.tomogram,
            folder / "pseudolabels",
            PseudoLabelConfig(
                slabs=slab_spec,
                membranes=variant.membranes,
                particles=variant.particles,
                solver=variant.solver,
                backbone=BackboneConfig(source=variant.backbone, device=config.device),
                features=dataclasses.replace(PseudoLabelConfig(slabs="").features, num_samples=config.num_samples),
                paper=config.paper,
            ),
        )
        pseudo_seconds = time.monotonic() - start
        row = {"method": variant.label, "kind": "unsupervised", "random_weights": variant.random_weights,
               "membranes": variant.membranes, "particles": variant.particles, "pseudolabel_s": round(pseudo_seconds, 1)}
        row["pseudolabel_membrane"] = _mask_scores(evaluate_mask(pseudo.mask, reference.membrane, slab))
        if reference.particles is not None:
            row["pseudopoints"] = _point_scores(folder / "pseudolabels", reference, radius)
        row.update(_train_and_apply(dataset, [folder / "pseudolabels"], folder, radius, config))
        rows.append(row)

    supervised_folder = _fresh(work / "supervised")
    _write_true_labels(reference, supervised_folder / "labels", slab, radius, dataset.voxel_size_A)
    rows.append({"method": "supervised: same U-Net and picker on the TRUE labels of the slab", "kind": "supervised",
                 **_train_and_apply(dataset, [supervised_folder / "labels"], supervised_folder, radius, config)})

    for method in ("otsu", "adaptive"):
        per_tomogram = {}
        for tomo in dataset.tomograms:
            mask_path = work / "baselines" / f"{tomo.name}_{method}.mrc"
            threshold_baseline(tomo.tomogram, mask_path, method, config.segmentation.min_component_voxels)
            per_tomogram[tomo.name] = {"membrane": _mask_scores(evaluate_mask(mask_path, tomo.membrane))}
        label = "global Otsu threshold" if method == "otsu" else "local adaptive threshold"
        rows.append({"method": label, "kind": "classical", "tomograms": per_tomogram})
    if any(tomo.particles is not None for tomo in dataset.tomograms):
        rows.append({"method": "blob detector of the pseudo-label stage over whole tomograms (template-free picker)",
                     "kind": "classical", "tomograms": _blob_picker(dataset, work / "blob-picker", radius)})

    for row in rows:
        row["mean"] = _means(row.get("tomograms", {}))
    supervised = next(r for r in rows if r["kind"] == "supervised")["mean"]
    for row in rows:
        if row["kind"] == "unsupervised" and supervised.get("dice"):
            row["dice_ratio_to_supervised"] = _round(row["mean"].get("dice", 0.0) / supervised["dice"])
    return {
        "dataset": dataset.name,
        "targets": membrane_targets(dataset.name, rows) + pick_targets(dataset.name, rows),
        "truth_notes": [tomo.note for tomo in dataset.tomograms if tomo.note],
        "description": dataset.description,
        "slab": slab_spec,
        "slab_slices": len(slab),
        "depth": depth,
        "match_radius_voxels": radius,
        "rows": rows,
    }


def membrane_targets(dataset: str, rows: List[dict]) -> List[dict]:
    """The first (default) unsupervised row against the data set's membrane targets: measure, value, target, met."""
    targets = MEMBRANE_TARGETS.get(dataset)
    default = next((r for r in rows if r["kind"] == "unsupervised"), None)
    if targets is None or default is None:
        return []
    thresholds = max(r["mean"].get("dice", 0.0) for r in rows if r["kind"] == "classical")
    checks = [
        ("pseudo-label Dice on the slab", default["pseudolabel_membrane"]["dice"], targets["pseudolabel"]),
        ("membrane Dice, all tomograms", default["mean"].get("dice"), targets["final"]),
        ("margin over the best thresholding baseline", _round(default["mean"].get("dice", 0.0) - thresholds), targets["margin_over_thresholds"]),
    ]
    if targets["ratio_to_supervised"] is not None:
        checks.append(("share of the supervised U-Net's Dice", default.get("dice_ratio_to_supervised"), targets["ratio_to_supervised"]))
    return [{"measure": m, "value": v, "target": t, "met": v is not None and v >= t} for m, v, t in checks]


def pick_targets(dataset: str, rows: List[dict]) -> List[dict]:
    """The default row's and the supervised row's mean pick F1 (at their thresholds) against the targets."""
    targets = PICK_TARGETS.get(dataset)
    if targets is None:
        return []
    checks = []
    for kind, label in (("unsupervised", "pick F1 from pseudo-points"), ("supervised", "pick F1, same picker on the true points")):
        row = next((r for r in rows if r["kind"] == kind), None)
        if row is None or "pick_f1" not in row["mean"]:
            continue
        checks.append((label, row["mean"]["pick_f1"], targets[kind]))
        if "pick_f1_labels" in row["mean"]:
            checks.append((label + " (ribosomes of labels.mrc)", row["mean"]["pick_f1_labels"], targets[kind]))
    return [{"measure": m, "value": v, "target": t, "met": v is not None and v >= t} for m, v, t in checks]


def _point_scores(folder: Path, tomo, radius: float) -> dict:
    """Pseudo-points and held-out calibration points of a pseudo-label folder: how many, how many are true."""
    manifest = read_manifest(folder)
    scores = {}
    for name, path in (("pseudo", manifest.points), ("calibration", manifest.calibration_points)):
        if path is None or not path.is_file():
            continue
        points = read_points(path)
        scores[name] = {"count": int(len(points))}
        for truth_name, truth in (("precision", tomo.particles), ("precision_labels", tomo.particles_from_labels)):
            if truth is not None:
                scores[name][truth_name] = _round(picking_metrics(points, read_points(truth), radius)["precision"])
    return {"count": scores.get("pseudo", {}).get("count", 0), "precision": scores.get("pseudo", {}).get("precision"), **scores}


def _blob_picker(dataset: Dataset, work: Path, radius: float) -> dict:
    """The pseudo-label stage's blob detector over every slice of every tomogram, scored like the picks."""
    from ..pseudolabel.blobs import BlobConfig, detect_blobs
    from ..tomoio import write_text

    per_tomogram = {}
    for tomo in dataset.tomograms:
        if tomo.particles is None:
            continue
        tomogram = read_tomogram(tomo.tomogram, check_values=False)
        config = BlobConfig(diameter_nm=RIBOSOME_DIAMETER_A / 10)
        points, scores, _ = detect_blobs(tomogram.data, 0, tomogram.shape[0], tomogram.voxel_size_nm, config)
        path = write_text(work / f"{tomo.name}_blobs.csv", "x,y,z,score\n" + "".join(f"{x:.2f},{y:.2f},{z:.2f},{v:.3f}\n" for (x, y, z), v in zip(points, scores)))
        per_tomogram[tomo.name] = {"particles": _pick_scores(path, tomo, radius, by_threshold=False)}
    return per_tomogram


def _pick_scores(picks_csv: Path, tomo, radius: float, by_threshold: bool = True) -> dict:
    """Precision, recall and F1 of a pick list against the truth (and the labels' ribosomes where known)."""
    result = evaluate_points(picks_csv, tomo.particles, radius)
    scores = {key: _round(result[key]) for key in ("precision", "recall", "f1")}
    if tomo.particles_from_labels is not None:
        scores["f1_labels"] = _round(evaluate_points(picks_csv, tomo.particles_from_labels, radius)["f1"])
    if by_threshold:
        scores["by_threshold"] = picking_by_threshold(picks_csv, tomo.particles, radius)
    return scores


def _train_and_apply(dataset: Dataset, labels: List[Path], folder: Path, radius: float, config: AccuracyBenchConfig) -> dict:
    """Train both models on label folders, then segment and pick every tomogram; scores per tomogram."""
    timings = {}
    start = time.monotonic()
    membrane_model = train_membrane_model(labels, folder / "model" / "membranes", dataclasses.replace(config.membrane_training, device=config.device))
    timings["train_membranes_s"] = round(time.monotonic() - start, 1)
    picker = None
    with_points = [path for path in labels if _has_points(path)]
    if with_points:
        start = time.monotonic()
        picker = train_picker(with_points, folder / "model" / "particles", dataclasses.replace(config.picker_training, device=config.device))
        timings["train_picker_s"] = round(time.monotonic() - start, 1)
    per_tomogram = {}
    for tomo in dataset.tomograms:
        seg = segment_tomogram(tomo.tomogram, membrane_model, folder / "segmentation" / tomo.name, dataclasses.replace(config.segmentation, device=config.device))
        scores = {"membrane": _mask_scores(evaluate_mask(seg["mask"], tomo.membrane))}
        if tomo.particles is not None:
            if picker is not None:
                picks = pick_particles(tomo.tomogram, picker, folder / "picks" / tomo.name, dataclasses.replace(config.picking, device=config.device))
                scores["particles"] = _pick_scores(picks["particles_csv"], tomo, radius)
                summary = json.loads(picks["summary"].read_text())
                scores["particles"]["threshold"] = summary["threshold"]
                for key in ("picks_average", "random_average"):  # None: fewer than two boxes to average
                    average = summary.get(key)
                    scores["particles"][key] = {k: average[k] for k in ("boxes", "centre_contrast", "fsc_low_shells")} if average else None
            else:  # no pseudo-points: nothing picked
                scores["particles"] = {"precision": 1.0, "recall": 0.0, "f1": 0.0,
                                       "by_threshold": {f"{t:.1f}": {"precision": 1.0, "recall": 0.0, "f1": 0.0} for t in SCORE_THRESHOLDS}}
        per_tomogram[tomo.name] = scores
    return {"tomograms": per_tomogram, **timings}


def picking_by_threshold(picks_csv: Path, truth_csv: Path, radius: float) -> Dict[str, Dict[str, float]]:
    """Picking scores of the picks cut at each of SCORE_THRESHOLDS.

    Equal to picking again at that threshold: non-maximum suppression lets a pick be removed only by a
    higher-scoring one, so the picks above a higher threshold are the same either way.
    """
    rows = read_points(picks_csv, columns=("x", "y", "z", "score"))
    truth = read_points(truth_csv)
    cut = {}
    for threshold in SCORE_THRESHOLDS:
        result = picking_metrics(rows[rows[:, 3] >= threshold, :3], truth, radius)
        cut[f"{threshold:.1f}"] = {key: _round(result[key]) for key in ("precision", "recall", "f1")}
    return cut


def _write_true_labels(tomo, folder: Path, slab: List[int], radius: float, voxel_size_A: float) -> None:
    """A label folder like the pseudo-label stage writes, from the ground truth of the slab: the membrane mask
    of the slab, the true centres of the particles that cut it, and the true centres on the held-out slices
    beyond it, which calibrate the picker's threshold as the pseudo-label stage's held-out points do."""
    from ..pseudolabel.blobs import BlobConfig, held_out_slices
    from ..records import write_json
    from ..tomoio import write_text

    truth = read_tomogram(tomo.membrane, check_values=False)
    mask = np.zeros(truth.shape, dtype=np.int8)
    mask[slab] = np.asarray(truth.data[slab]) > 0
    write_mrc(folder / "truth_mask.mrc", mask, truth.voxel_size)
    outputs = {"membrane_mask": "truth_mask.mrc"}
    held_out: List[int] = []
    if tomo.particles is not None:
        centres = read_points(tomo.particles)
        cutting = centres[[any(abs(z - s) <= radius for s in slab) for z in centres[:, 2]]]
        depth = int(round(BlobConfig().calibration_nm * 10 / voxel_size_A))
        held_out = held_out_slices(slab, radius, depth, truth.shape[0])
        beyond = centres[np.isin(np.rint(centres[:, 2]).astype(int), held_out)]
        for name, points in (("truth_points.csv", cutting), ("truth_calibration_points.csv", beyond)):
            write_text(folder / name, "x,y,z\n" + "".join(f"{x:.2f},{y:.2f},{z:.2f}\n" for x, y, z in points))
        outputs.update(points="truth_points.csv", calibration_points="truth_calibration_points.csv")
    tomogram = read_tomogram(tomo.tomogram, check_values=False)
    write_json(folder / "pseudolabels.json", {
        "tomogram": str(Path(tomo.tomogram).resolve()), "tomogram_name": Path(tomo.tomogram).stem,
        "shape_zyx": list(tomogram.shape), "voxel_size_A": tomogram.voxel_size, "labelled_slices": slab,
        "calibration_slices": held_out, "outputs": outputs,
    })


def _has_points(labels: Path) -> bool:
    points = read_manifest(labels).points
    return points is not None and len(read_points(points)) > 0


def _mask_scores(result: dict) -> Dict[str, float]:
    return {key: _round(result[key]) for key in ("dice", "per_slice_mean_dice", "iou", "precision", "recall")}


def _means(per_tomogram: dict) -> Dict[str, float]:
    means = {}
    for part, keys in (("membrane", ("dice", "per_slice_mean_dice", "iou")), ("particles", ("precision", "recall", "f1", "f1_labels"))):
        for key in keys:
            values = [scores[part][key] for scores in per_tomogram.values() if key in scores.get(part, {})]
            if values:
                means[key if part == "membrane" else f"pick_{key}"] = _round(float(np.mean(values)))
    cuts = [scores["particles"]["by_threshold"] for scores in per_tomogram.values() if "by_threshold" in scores.get("particles", {})]
    if cuts:
        means["pick_f1_by_threshold"] = {t: _round(float(np.mean([cut[t]["f1"] for cut in cuts]))) for t in cuts[0]}
    return means


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 3)


def _fresh(folder: Path) -> Path:
    """An empty folder: nothing of an earlier run (labels, models, training states) may be reused."""
    import shutil

    if folder.exists():
        shutil.rmtree(folder)
    return folder


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]
