"""Speed and memory: per-stage cost of the pseudo-label pipeline per tile, segmentation throughput and
peak memory on a large memory-mapped tomogram, and the wall time of the main job.

Timings are medians over ``repeats`` runs; peak memory is measured in a separate process (its maximum
resident set size), so the benchmark's own memory does not count.
"""

import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..features.attention import AttentionCapture
from ..features.backbone import BackboneConfig, load_backbone
from ..pseudolabel.canvas import CanvasConfig, build_canvas
from ..pseudolabel.masks import InstanceSplitter, MaskConfig, binarize, separate_membranes
from ..pseudolabel.preprocess import preprocess_slice
from ..pseudolabel.tiling import plan_tiles
from ..spectral import DirectSolverConfig, direct_eigenmaps
from ..synthetic import generate_phantom, scaled_config


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pseudolabel_stage_times(backbone_source: str, repeats: int = 3, num_samples: int = 4) -> dict:
    """Median seconds per tile of each pseudo-label stage on one tile of a generated slice."""
    backbone = load_backbone(BackboneConfig(source=backbone_source, device="cpu"))
    size = backbone.input_size
    phantom = generate_phantom(scaled_config((16, size, size), seed=5))
    image = preprocess_slice(phantom.tomogram[8])
    tile = plan_tiles(image.shape, size, "native").extract(image)[:1]
    patch = (torch.from_numpy(tile).float() / 255.0)[:, None]
    clean = backbone.encode(patch)
    samples: List = []

    def passes():
        samples.clear()
        generator = torch.Generator().manual_seed(0)
        with AttentionCapture(backbone.unet, keep_heads=False) as capture:
            for _ in range(num_samples):
                backbone.noisy_pass(clean, torch.tensor([20]), generator)
                samples.extend(capture.collect())

    times = {"encode": _median_time(lambda: backbone.encode(patch), repeats)}
    times[f"UNet passes with attention capture (x{num_samples})"] = _median_time(passes, repeats)
    maps = {}
    times["direct eigen-maps"] = _median_time(lambda: maps.update(m=direct_eigenmaps(samples, DirectSolverConfig())), repeats)
    canvas = {}
    times["canvas"] = _median_time(lambda: canvas.update(c=build_canvas(maps["m"], CanvasConfig(output_size=size))), repeats)
    image_canvas = canvas["c"].image if canvas["c"] is not None else np.full((size, size), 128, np.uint8)
    splitter = InstanceSplitter(MaskConfig(splitter="watershed"))

    def masks():
        binary = binarize(image_canvas)
        separate_membranes(binary, splitter.split(binary))

    times["threshold, watershed split, circularity"] = _median_time(masks, repeats)
    # Tiles per 512 x 512 px of slice in the default tiling (native, overlap 1/4 of a tile) of a 2048 x 2048
    # slice, to compare backbones whose tiles differ in size.
    tiles_per_patch = len(plan_tiles((2048, 2048), size, "native").tiles) / 16
    return {
        "backbone": backbone.name,
        "tile_px": size,
        "num_samples": num_samples,
        "repeats": repeats,
        "seconds_per_tile": {k: round(v, 4) for k, v in times.items()},
        "total_s_per_tile": round(sum(times.values()), 3),
        "tiles_per_512_patch": tiles_per_patch,
        "total_s_per_512_patch": round(sum(times.values()) * tiles_per_patch, 2),
    }


def write_large_tomogram(path: Path, shape=(256, 1024, 1024), voxel_size: float = 10.0) -> Path:
    """A memory-mapped float32 MRC of smooth noise, written slab by slab (content does not change speed)."""
    import mrcfile

    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        for z in range(0, shape[0], 16):
            mrc.data[z : z + 16] = rng.standard_normal((min(16, shape[0] - z), *shape[1:]), dtype=np.float32)
        mrc.voxel_size = voxel_size
    return path


# Linux starts a process's peak resident memory at that of the process it was forked from (the peak is
# carried across exec), so a child of the benchmark would report at least the benchmark's own peak. The
# command is therefore forked from this small interpreter, which writes the command's usage to a pipe.
_LAUNCHER = """import os, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def child_usage(command: List[str], log: Optional[Path] = None) -> Dict[str, float]:
    """Run ``command`` in a child process (output to ``log``, or dropped); its wall time and its own peak
    resident memory, not this process's nor the maximum over every child this process ever had."""
    read_end, write_end = os.pipe()
    start = time.perf_counter()
    try:
        with open(log if log is not None else os.devnull, "w") as output:
            launcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write_end), *command],
                                        stdout=output, stderr=subprocess.STDOUT if log is not None else None,
                                        pass_fds=(write_end,), env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
            os.close(write_end)
            with os.fdopen(read_end) as report:
                peak_kib = report.read()
            status = launcher.wait()
    finally:
        for end in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(end)
    wall = time.perf_counter() - start
    if status or not peak_kib:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed with status {status}" + (f"; see {log}" if log else ""))
    return {"wall_s": wall, "peak_rss_GiB": int(peak_kib) / 2**20}


def _engine_in_subprocess(arguments: List[str]) -> Dict[str, float]:
    """`cryodiffseg ARGUMENTS` in a child process: its wall time and its own peak resident memory."""
    return child_usage([sys.executable, "-m", "cryodiffseg", "-q", *arguments])


def segment_in_subprocess(tomogram: Path, model: Path, out: Path) -> Dict[str, float]:
    return _engine_in_subprocess(["segment", str(tomogram), "--model", str(model), "--out", str(out), "--device", "cpu"])


def default_pseudolabel_cost(work: Path, shape=(300, 1024, 1024), slab_sizes=(4, 100)) -> dict:
    """Wall time and peak memory of the default pseudo-label stage (image evidence, no model) on a tomogram of
    ``shape``, for a slab of each size in its middle; seconds per 512 x 512 px of labelled slice."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    tomogram = write_large_tomogram(work / "pseudolabel_cost.mrc", shape)
    rows = []
    for size in slab_sizes:
        first = shape[0] // 2 - size // 2
        run = _engine_in_subprocess(["pseudolabel", str(tomogram), "--slabs", f"{first}-{first + size - 1}", "--out", str(work / f"slab{size}")])
        patches = size * shape[1] * shape[2] / 512**2
        rows.append({"slab_slices": size, "wall_s": round(run["wall_s"], 1), "peak_rss_GiB": round(run["peak_rss_GiB"], 2),
                     "s_per_512_patch": round(run["wall_s"] / patches, 2)})
    return {"shape_zyx": list(shape), "rows": rows}


def segmentation_throughput(model: Path, work: Path, large_shape=(256, 1024, 1024), small_slices: int = 16, repeats: int = 3) -> dict:
    """Peak memory on the large volume (one run) and voxels/s as the median of runs on a thinner one."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    large = write_large_tomogram(work / "large.mrc", large_shape)
    input_gib = large.stat().st_size / 2**30
    big = segment_in_subprocess(large, model, work / "large_out")
    thin_shape = (small_slices, *large_shape[1:])
    thin = write_large_tomogram(work / "thin.mrc", thin_shape)
    walls = [segment_in_subprocess(thin, model, work / f"thin_out{i}")["wall_s"] for i in range(repeats)]
    thin_voxels = float(np.prod(thin_shape))
    return {
        "large_shape_zyx": list(large_shape),
        "input_GiB": round(input_gib, 3),
        "large_wall_s": round(big["wall_s"], 1),
        "large_voxels_per_s": round(float(np.prod(large_shape)) / big["wall_s"]),
        "peak_rss_GiB": round(big["peak_rss_GiB"], 3),
        "peak_rss_over_input": round(big["peak_rss_GiB"] / input_gib, 3),
        "thin_shape_zyx": list(thin_shape),
        "repeats": repeats,
        "thin_voxels_per_s_median": round(thin_voxels / statistics.median(walls)),
    }


def main_job_wall_time(out: Path, config, repeats: int = 3) -> dict:
    """The main job (`cryodiffseg demo`, i.e. ``run_demo``) timed end to end, in this process."""
    from ..workflow import run_demo

    walls, stages = [], None
    for index in range(repeats):
        start = time.perf_counter()
        report = run_demo(Path(out) / f"run{index}", config)
        walls.append(time.perf_counter() - start)
        stages = stages or report["timings_s"]
    return {"repeats": repeats, "wall_s": [round(w, 1) for w in walls], "wall_s_median": round(statistics.median(walls), 1),
            "stages_s_first_run": stages, "scores_first_run": report["scores"]}
