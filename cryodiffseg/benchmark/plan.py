"""What `cryodiffseg bench` runs: one plan for the report, a tiny one for the smoke test."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple

SECTIONS = ("spectral", "stages", "accuracy", "presets", "slabs", "microtubules", "segmentation", "peers", "dataset", "mainjob")


@dataclass
class BenchPlan:
    generated_shape: Tuple[int, int, int] = (96, 256, 256)
    generated_count: int = 2
    spectral_tiles: int = 3
    paper_iterations: int = 2000
    with_paper_variant: bool = False  # the paper solver in the accuracy run (about 2 min per tile on a CPU)
    stage_repeats: int = 3
    evidence_shape: Tuple[int, int, int] = (300, 1024, 1024)  # the default pseudo-label stage's cost is measured on this
    evidence_slabs: Tuple[int, ...] = (4, 100)
    membrane_iterations: int = 300
    slab_choices: int = 10  # random manual-style slabs the automatic one is compared with
    slab_seeds: Tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # the automatic selection's seeds (each one automatic choice)
    picker_iterations: int = 400
    large_shape: Tuple[int, int, int] = (256, 1024, 1024)
    thin_slices: int = 16
    timing_repeats: int = 3
    peer_small_shape: Tuple[int, int, int] = (128, 256, 256)  # when the polnet sims are absent
    peer_large_shape: Tuple[int, int, int] = (256, 1024, 1024)
    peer_large_windows: int = 3  # MemBrain-seg's windows run on the large tomogram (about 45 s each on 2 cores)
    with_peer: bool = True  # install and run MemBrain-seg (not in the smoke run: it needs the package index)
    dataset_shape: Tuple[int, int, int] = (300, 1024, 1024)  # one tomogram of the whole-chain cost
    dataset_tomograms: int = 20  # the data set whose cost is totalled
    main_job_repeats: int = 3
    results: Path = Path("benchmarks/results")  # where results go; long sections also keep their finished parts here
    data_root: Path = field(default_factory=lambda: Path(__file__).resolve().parents[2].parent / "shared" / "data")


SMOKE = BenchPlan(
    generated_shape=(40, 96, 96),  # deep enough for particles a radius from the faces
    spectral_tiles=1,
    paper_iterations=20,
    stage_repeats=1,
    evidence_shape=(40, 96, 96),
    evidence_slabs=(4,),
    membrane_iterations=4,
    picker_iterations=4,
    slab_choices=2,
    slab_seeds=(0,),
    large_shape=(8, 128, 128),
    thin_slices=4,
    timing_repeats=1,
    peer_small_shape=(8, 64, 64),
    peer_large_shape=(8, 128, 128),
    with_peer=False,
    dataset_shape=(40, 128, 128),  # the smallest that gives the picker pseudo-points
    dataset_tomograms=2,
    main_job_repeats=0,
)


def smoke_plan(data_root: Path) -> BenchPlan:
    return dataclasses.replace(SMOKE, data_root=Path(data_root))
