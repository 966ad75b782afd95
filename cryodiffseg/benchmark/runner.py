"""Running one benchmark section and storing its result with the command and machine that produced it."""

import dataclasses
import logging
from pathlib import Path

from ..records import write_json
from .machine import machine_summary
from .plan import BenchPlan

log = logging.getLogger("cryodiffseg")


def run_section(section: str, plan: BenchPlan, backbone: str, work: Path, command: str, smoke: bool) -> Path:
    log.info("Benchmark section %s%s", section, " (smoke)" if smoke else "")
    result = SECTION_RUNNERS[section](plan, backbone, Path(work) / section)
    return write_json(Path(plan.results) / f"{section}.json", {"command": command, "smoke": smoke, "machine": machine_summary(), "result": result})


def _spectral(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .spectral import SpectralBenchConfig, run_spectral_bench

    return run_spectral_bench(SpectralBenchConfig(backbone=backbone, tiles=plan.spectral_tiles, paper_iterations=plan.paper_iterations), work)


def _stages(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .models import random_sd_topology
    from .speed import default_pseudolabel_cost, pseudolabel_stage_times

    rows = [{**pseudolabel_stage_times(backbone, plan.stage_repeats), "weights": "trained"}]
    if plan.stage_repeats > 1:  # SD-sized models only in the full run
        rows.append({**pseudolabel_stage_times(str(random_sd_topology(work / "sd-topology")), plan.stage_repeats),
                     "weights": "random (Stable Diffusion 1.x sizes; timing only)"})
    return {"rows": rows, "default": default_pseudolabel_cost(work / "default", plan.evidence_shape, plan.evidence_slabs)}


def _accuracy(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from ..picking import PickerTrainingConfig
    from ..segmentation import MembraneTrainingConfig
    from ..spectral import PaperSolverConfig
    from .accuracy import AccuracyBenchConfig, Variant, run_accuracy_bench
    from .datasets import generated_dataset, shared_sim_dataset
    from .models import random_compact_backbone

    random = str(random_compact_backbone(work / "random-compact"))
    variants = [
        Variant("default: membranes from sheet evidence, points from blob evidence (no diffusion model)", backbone),
        Variant("ablation: attention canvas alone for both (the paper's way), trained compact backbone", backbone,
                membranes="attention", particles="attention"),
        Variant("ablation: image evidence weighted or confirmed by the attention canvas, trained compact backbone", backbone,
                membranes="both", particles="both"),
        Variant("ablation: attention canvas alone, compact architecture with random weights", random, random_weights=True,
                membranes="attention", particles="attention"),
    ]
    if plan.with_paper_variant:
        variants.append(Variant("ablation: attention canvas alone, trained compact backbone, paper solver", backbone, solver="paper",
                                membranes="attention", particles="attention"))
    config = AccuracyBenchConfig(
        variants=variants,
        paper=PaperSolverConfig(iterations=plan.paper_iterations),
        membrane_training=MembraneTrainingConfig(iterations=plan.membrane_iterations),
        picker_training=PickerTrainingConfig(iterations=plan.picker_iterations),
    )
    datasets = [generated_dataset(work / "data", plan.generated_shape, plan.generated_count, seed=11)]
    shared = shared_sim_dataset(plan.data_root, work / "truth")
    if shared is not None:
        datasets.append(shared)
    return {
        "variants": [dataclasses.asdict(v) for v in variants],
        "membrane_iterations": plan.membrane_iterations,
        "picker_iterations": plan.picker_iterations,
        "shared_data": str(plan.data_root) if shared is not None else None,
        "datasets": [run_accuracy_bench(d, work / d.name.split()[0], config) for d in datasets],
    }


def _presets(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from ..spectral import PaperSolverConfig
    from .datasets import generated_dataset, shared_sim_dataset
    from .presets import preset_rows, run_preset_bench

    rows = preset_rows(with_paper_solver=plan.with_paper_variant)
    datasets = [generated_dataset(work / "data", plan.generated_shape, plan.generated_count, seed=11)]
    shared = shared_sim_dataset(plan.data_root, work / "truth")
    if shared is not None:
        datasets.append(shared)
    paper = PaperSolverConfig(iterations=plan.paper_iterations)
    return {"paper_iterations": plan.paper_iterations if plan.with_paper_variant else None, "shared_data": str(plan.data_root) if shared is not None else None,
            "datasets": [run_preset_bench(d, work / d.name.split()[0], backbone, rows, paper) for d in datasets]}


def _slabs(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from ..picking import PickerTrainingConfig
    from ..segmentation import MembraneTrainingConfig
    from .accuracy import AccuracyBenchConfig
    from .datasets import generated_dataset, shared_sim_dataset
    from .slabs import run_slab_bench

    config = AccuracyBenchConfig(variants=[], membrane_training=MembraneTrainingConfig(iterations=plan.membrane_iterations),
                                 picker_training=PickerTrainingConfig(iterations=plan.picker_iterations))
    datasets = [generated_dataset(work / "data", plan.generated_shape, plan.generated_count, seed=11)]
    shared = shared_sim_dataset(plan.data_root, work / "truth")
    if shared is not None:
        datasets.append(shared)
    return {"choices": plan.slab_choices, "seeds": list(plan.slab_seeds), "membrane_iterations": plan.membrane_iterations, "picker_iterations": plan.picker_iterations,
            "datasets": [run_slab_bench(d, work / d.name.split()[0], config, plan.slab_choices, plan.results / "slabs-rows" / d.name.split()[0],
                                         plan.slab_seeds)
                         for d in datasets]}


def _microtubules(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .datasets import microtubule_patches
    from .microtubules import run_microtubule_bench
    from .models import random_compact_backbone

    patches = microtubule_patches(plan.data_root)
    if not patches:
        return {"absent": str(plan.data_root / "tardis-microtubules"), "rows": []}
    sources = [("sheet evidence (default)", "sheets", backbone),
               ("attention canvas, trained compact", "attention", backbone),
               ("attention canvas, random weights", "attention", str(random_compact_backbone(work / "random-compact")))]
    return run_microtubule_bench(patches, work, sources)


def _segmentation(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .models import random_membrane_model
    from .speed import segmentation_throughput

    model = random_membrane_model(work / "model")
    return segmentation_throughput(model, work, plan.large_shape, plan.thin_slices, plan.timing_repeats)


def _peers(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .datasets import shared_sim_dataset
    from .models import random_membrane_model
    from .peers import run_peer_bench
    from .speed import write_large_tomogram

    work.mkdir(parents=True, exist_ok=True)
    shared = shared_sim_dataset(plan.data_root)
    small = shared.tomograms[0].tomogram if shared is not None else write_large_tomogram(work / "small.mrc", plan.peer_small_shape)
    large = write_large_tomogram(work / "large.mrc", plan.peer_large_shape)
    model = random_membrane_model(work / "model")
    return run_peer_bench(work, [small, large], model, {large.name: plan.peer_large_windows}, with_peer=plan.with_peer)


def _dataset(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from .dataset_cost import run_dataset_cost

    return run_dataset_cost(work, plan.dataset_shape, plan.dataset_tomograms, (plan.membrane_iterations, plan.picker_iterations))


def _mainjob(plan: BenchPlan, backbone: str, work: Path) -> dict:
    from ..picking import PickerTrainingConfig
    from ..segmentation import MembraneTrainingConfig
    from ..workflow import DemoConfig
    from .speed import main_job_wall_time

    if plan.main_job_repeats:
        return {"command": "cryodiffseg demo --out DIR", **main_job_wall_time(work, DemoConfig(backbone=backbone), plan.main_job_repeats)}
    tiny = DemoConfig(shape=plan.generated_shape, slab_slices=4, backbone=backbone,
                      membrane_training=MembraneTrainingConfig(iterations=plan.membrane_iterations),
                      picker_training=PickerTrainingConfig(iterations=plan.picker_iterations))
    return {"command": "smoke: a reduced demo", **main_job_wall_time(work, tiny, 1)}


SECTION_RUNNERS = {
    "spectral": _spectral,
    "stages": _stages,
    "accuracy": _accuracy,
    "presets": _presets,
    "slabs": _slabs,
    "microtubules": _microtubules,
    "segmentation": _segmentation,
    "peers": _peers,
    "dataset": _dataset,
    "mainjob": _mainjob,
}
