"""The whole chain on generated tomograms, scored against their ground truth: the demo and main job.

pseudo-label the slabs of one tomogram -> train the membrane U-Net and the picker -> segment and pick
every tomogram -> evaluate. Each stage is the same function the command line calls.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from .evaluation import evaluate_mask, evaluate_points
from .features.backbone import BackboneConfig
from .picking import PickerTrainingConfig, PickingConfig, pick_particles, train_picker
from .pseudolabel.pipeline import PseudoLabelConfig, run_pseudolabel
from .records import write_json
from .segmentation import MembraneTrainingConfig, SegmentationConfig, segment_tomogram, train_membrane_model
from .synthetic import generate_phantom, scaled_config, write_phantom

log = logging.getLogger("cryodiffseg")


@dataclass
class DemoConfig:
    shape: Tuple[int, int, int] = (64, 192, 192)
    voxel_size_A: float = 10.0
    snr: float = 0.3
    tomograms: int = 2  # the first is pseudo-labelled, all are segmented and picked
    slab_slices: int = 6  # a slab in the middle of the first tomogram
    seed: int = 1
    backbone: str = "compact"
    membrane_training: MembraneTrainingConfig = field(default_factory=MembraneTrainingConfig)
    picker_training: PickerTrainingConfig = field(default_factory=PickerTrainingConfig)
    device: str = "auto"


def run_demo(out_dir, config: DemoConfig = DemoConfig()) -> Dict:
    out_dir = Path(out_dir)
    timings: Dict[str, float] = {}
    clock = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()
        log.info("Stage %s done in %.1f s", stage, timings[stage])

    data = []
    for index in range(config.tomograms):
        phantom = generate_phantom(scaled_config(config.shape, voxel_size_A=config.voxel_size_A, snr=config.snr, seed=config.seed + index))
        data.append(write_phantom(phantom, out_dir / "data" / f"tomo{index + 1}"))
    lap("generate")

    nz = config.shape[0]
    first = nz // 2 - config.slab_slices // 2
    slabs = f"{first}-{first + config.slab_slices - 1}"
    pseudo_dir = out_dir / "pseudolabels"
    pseudo = run_pseudolabel(
        data[0]["tomogram"], pseudo_dir, PseudoLabelConfig(slabs=slabs, backbone=BackboneConfig(source=config.backbone, device=config.device))
    )
    lap("pseudolabel")

    model_dir = out_dir / "model"
    train_membrane_model([pseudo_dir], model_dir / "membranes", _with_device(config.membrane_training, config.device))
    lap("train membranes")
    picker = None
    if pseudo.num_points:
        picker = train_picker([pseudo_dir], model_dir / "particles", _with_device(config.picker_training, config.device))
    else:
        log.warning("No pseudo-points in the slab: the picker is not trained and nothing is picked")
    lap("train picker")

    # Pseudo-points exist only on the slab: their precision is meaningful, their recall is not.
    pseudo_points = evaluate_points(pseudo.points, data[0]["particles"], _match_radius(config))
    scores = {"pseudolabels": {
        "membrane": _scores(evaluate_mask(pseudo.mask, data[0]["membrane"], pseudo.labelled_slices)),
        "points": {"count": pseudo.num_points, "precision": round(float(pseudo_points["precision"]), 3)},
    }}
    for index, paths in enumerate(data):
        name = f"tomo{index + 1}"
        seg = segment_tomogram(paths["tomogram"], model_dir / "membranes", out_dir / "segmentation" / name, SegmentationConfig(device=config.device))
        scores[name] = {"membrane": _scores(evaluate_mask(seg["mask"], paths["membrane"])),
                        "particles": {"precision": 1.0, "recall": 0.0, "f1": 0.0}}
        if picker is not None:
            picks = pick_particles(paths["tomogram"], picker, out_dir / "picks" / name, PickingConfig(device=config.device))
            scores[name]["particles"] = _scores(evaluate_points(picks["particles_csv"], paths["particles"], _match_radius(config)))
    lap("segment and pick")
    report = {"slabs": slabs, "qc": [str(p) for p in pseudo.qc], "scores": scores, "timings_s": timings}
    write_json(out_dir / "demo.json", report)
    return report


def _with_device(training_config, device: str):
    import dataclasses

    return dataclasses.replace(training_config, device=device)


def _match_radius(config: DemoConfig) -> float:
    """Half a ribosome diameter (25 nm), in voxels."""
    return 125.0 / config.voxel_size_A


def _scores(result: dict, keys=("dice", "per_slice_mean_dice", "iou", "precision", "recall", "f1")) -> Dict[str, float]:
    return {key: round(float(result[key]), 3) for key in keys if key in result}


def format_scores(report: Dict) -> str:
    """The demo's score table: membranes against the generator's masks, picks against its ribosomes."""
    lines = [f"{'':<30}{'membrane Dice':>14}{'per-slice Dice':>16}{'IoU':>7}{'picks P':>9}{'picks R':>9}{'picks F1':>10}"]
    for name, score in report["scores"].items():
        membrane = score["membrane"]
        if name == "pseudolabels":
            label = f"pseudo-labels (slab {report['slabs']})"
            points = score["points"]
            picks = f"{points['precision']:>9}{'-':>9}{'-':>10}   ({points['count']} pseudo-points)"
        else:
            label = f"{name} (whole tomogram)"
            points = score["particles"]
            picks = f"{points['precision']:>9}{points['recall']:>9}{points['f1']:>10}"
        lines.append(f"{label:<30}{membrane['dice']:>14}{membrane['per_slice_mean_dice']:>16}{membrane['iou']:>7}{picks}")
    return "\n".join(lines)
