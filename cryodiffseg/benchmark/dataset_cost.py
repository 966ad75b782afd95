"""The cost of the whole chain for a data set: every stage on one 1024 x 1024 x 300 tomogram, and a GPU's share.

Each stage runs as its engine command with its defaults in a child process (wall time, its own peak memory):
pseudo-labels of one slab, training of the membrane U-Net and the picker, segmentation and picking of the
whole tomogram. Pseudo-labels and training are paid once per data set, segmentation and picking once per
tomogram. Where no GPU is at hand its time is computed, not measured: the networks' floating-point work is
counted (torch's FLOP counter on the shapes each stage feeds them), its CPU time is that of the same forward or
training step timed here, the rest of each stage (reading, filters, writing, connected components) is taken as
unchanged, and the networks' work runs at an assumed sustained GPU rate.
"""

import logging
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import mrcfile
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..folding import folded_for_inference
from ..picking import PickerTrainingConfig, PickingConfig
from ..picking.network import HeatmapUNet, PickerConfig
from ..pseudolabel.tiling import plan_tiles
from ..segmentation import MembraneTrainingConfig, SegmentationConfig
from ..segmentation.unet import UNet2D, UNetConfig
from .speed import child_usage

log = logging.getLogger("cryodiffseg")

SIMULATED_SIDE = 256  # px simulated in y and x, mirrored up to the benchmark's size
GPU_TFLOPS = 10.0  # assumed sustained FP32 rate of cuDNN convolutions: about half an A100's 19.5 TFLOP/s peak


def network_work(run: Callable[[], None], repeats: int = 2) -> Tuple[float, float]:
    """(floating-point operations, CPU seconds) of one call of ``run``: counted once, timed as the best of
    ``repeats`` after a warm-up call."""
    with FlopCounterMode(display=False) as counter:
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return float(counter.get_total_flops()), min(seconds)


def _forward(model: torch.nn.Module, shape: Sequence[int], channels_last: bool = False) -> Callable[[], None]:
    batch = torch.randn(*shape)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            model(batch)

    return run


def _training_step(model: torch.nn.Module, shape: Sequence[int], out_channels: int) -> Callable[[], None]:
    batch, target = torch.randn(*shape), torch.rand(shape[0], out_channels, *shape[2:])
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-6)
    model.train()

    def run():
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(batch)[:, :out_channels], target).backward()
        optimiser.step()

    return run


def network_budget(shape: Sequence[int], training: Tuple[int, int]) -> Dict[str, dict]:
    """Per stage with a network: how many calls of which network a ``shape`` (z, y, x) tomogram costs with the
    defaults, each call's FLOPs and CPU seconds measured here; the same voxel size for model and tomogram."""
    depth, height, width = shape
    membrane, picker_config = UNet2D(UNetConfig()), PickerConfig()
    picker = HeatmapUNet(picker_config).eval()
    segmentation, picking = SegmentationConfig(), PickingConfig()
    membrane_training, picker_training = MembraneTrainingConfig(), PickerTrainingConfig()

    if max(height, width) > segmentation.tile_size:  # SlicePredictor's layout: overlapping tiles, else one padded tile
        tiles_per_plane = len(plan_tiles((height, width), segmentation.tile_size, "native", overlap=segmentation.tile_overlap).tiles)
        plane = (1, 1, segmentation.tile_size, segmentation.tile_size)
    else:
        side = math.ceil(max(height, width) / membrane.config.size_multiple) * membrane.config.size_multiple
        tiles_per_plane, plane = 1, (1, 1, side, side)
    tile = math.ceil(picking.tile_size / picker_config.size_multiple) * picker_config.size_multiple
    chunks = math.ceil(depth / picking.chunk_slices)
    predicted_slices = depth + 2 * (chunks - 1)  # each chunk also scores one slice on each side
    picker_tiles = Counter(  # predict_slab's tiles: edge tiles are smaller, every tile gets its context margin
        (_padded(min(tile, height - y0), picker_config), _padded(min(tile, width - x0), picker_config))
        for y0 in range(0, height, tile) for x0 in range(0, width, tile))
    patch = math.ceil(picker_training.patch_size / picker_config.size_multiple) * picker_config.size_multiple  # no margin in training

    budget = {
        "membrane segmentation": [(depth * tiles_per_plane, _forward(folded_for_inference(membrane), plane, channels_last=True))],
        "particle picking": [(count * predicted_slices / picking.batch_size, _forward(folded_for_inference(picker), (picking.batch_size, picker_config.in_channels, *sides), channels_last=True))
                             for sides, count in picker_tiles.items()],
        "training": [
            (training[0], _training_step(UNet2D(UNetConfig()), (membrane_training.batch_size, 1, membrane_training.crop_size,
                                                                                 membrane_training.crop_size), 2)),
            (training[1], _training_step(HeatmapUNet(picker_config), (picker_training.batch_size, picker_config.in_channels,
                                                                                     patch, patch), 1)),
        ],
    }
    rows = {}
    for stage, parts in budget.items():
        flops = seconds = 0.0
        for calls, run in parts:
            call_flops, call_seconds = network_work(run)
            flops += calls * call_flops
            seconds += calls * call_seconds
        rows[stage] = {"network_tflop": flops / 1e12, "network_cpu_s": seconds}
    return rows


def _padded(side: int, config: PickerConfig) -> int:
    return math.ceil(side / config.size_multiple) * config.size_multiple + 2 * config.context_margin


def run_dataset_cost(work: Path, shape: Sequence[int] = (300, 1024, 1024), tomograms: int = 20,
                     training: Tuple[int, int] = (MembraneTrainingConfig.iterations, PickerTrainingConfig.iterations), seed: int = 5) -> dict:
    """Each stage's wall time and peak memory on one generated tomogram of ``shape``, the networks' share of
    each, and the chain's cost for a data set of ``tomograms`` such tomograms on this machine and on a GPU.
    ``training``: optimiser steps of the membrane U-Net and of the picker (the defaults unless a smoke run)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    tomogram = work / "tomogram.mrc"
    if not _has_shape(tomogram, shape):  # generated once and kept: it takes a while and does not change
        simulated = work / "simulation"
        tile = (shape[0], min(SIMULATED_SIDE, shape[1]), min(SIMULATED_SIDE, shape[2]))
        log.info("Data set cost: simulating %s and mirroring it to %s", " x ".join(map(str, tile)), " x ".join(map(str, shape)))
        child_usage(_engine("synth", "--out", simulated, "--shape", *tile, "--seed", seed), work / "synth.log")
        mirror_to_shape(simulated / "tomogram.mrc", tomogram, shape)
    stages = [
        ("pseudo-labels of the automatic slabs", "data set", _engine("pseudolabel", tomogram, "--slabs", "auto", "--out", work / "pseudolabels")),
        ("training", "data set", _engine("train", work / "pseudolabels", "--out", work / "model", "--iterations", training[0],
                                           "--picker-iterations", training[1], "--no-resume", "--device", "cpu")),
        ("membrane segmentation", "tomogram", _engine("segment", tomogram, "--model", work / "model", "--out", work / "segmentation", "--device", "cpu")),
        ("particle picking", "tomogram", _engine("pick", tomogram, "--model", work / "model", "--out", work / "picks", "--device", "cpu")),
    ]
    networks = network_budget(shape, training)
    rows = []
    for stage, paid_per, command in stages:
        log.info("Data set cost: %s", stage)
        measured = child_usage(command, work / f"{stage.split()[0]}.log")
        network = networks.get(stage, {"network_tflop": 0.0, "network_cpu_s": 0.0})
        network_cpu = min(network["network_cpu_s"], measured["wall_s"])
        rest = measured["wall_s"] - network_cpu
        rows.append({"stage": stage, "paid_per": paid_per, "wall_s": round(measured["wall_s"], 1),
                     "peak_rss_GiB": round(measured["peak_rss_GiB"], 2), "network_tflop": round(network["network_tflop"], 2),
                     "network_cpu_s": round(network_cpu, 1), "rest_s": round(rest, 1),
                     "gpu_estimate_s": round(rest + network["network_tflop"] / GPU_TFLOPS, 1)})
    return {"shape_zyx": list(shape), "simulated_side": SIMULATED_SIDE, "tomograms": tomograms, "training_iterations": list(training), "gpu_tflops_assumed": GPU_TFLOPS, "rows": rows,
            "totals": dataset_totals(rows, tomograms)}


def dataset_totals(rows: Sequence[dict], tomograms: int) -> dict:
    """Hours for ``tomograms`` tomograms: the once-per-data-set stages plus every tomogram's, CPU and GPU."""
    totals = {}
    for key in ("wall_s", "gpu_estimate_s"):
        once = sum(r[key] for r in rows if r["paid_per"] == "data set")
        each = sum(r[key] for r in rows if r["paid_per"] == "tomogram")
        totals[key] = {"once_s": round(once, 1), "per_tomogram_s": round(each, 1),
                       "data_set_h": round((once + tomograms * each) / 3600, 2)}
    return totals


def mirror_to_shape(source: Path, target: Path, shape: Sequence[int], chunk: int = 16) -> Path:
    """Write ``source`` repeated by mirroring in y and x up to ``shape`` (same depth), chunk by chunk: a large
    tomogram with cellular content, whose simulation at full size would take hours here."""
    with mrcfile.mmap(source, permissive=True) as small, mrcfile.new_mmap(target, shape=tuple(shape), mrc_mode=2, overwrite=True) as large:
        depth, height, width = small.data.shape
        if depth != shape[0]:
            raise ValueError(f"{source} has {depth} slices, not {shape[0]}.")
        pad = ((0, 0), (0, shape[1] - height), (0, shape[2] - width))
        for z in range(0, depth, chunk):
            large.data[z : z + chunk] = np.pad(np.asarray(small.data[z : z + chunk], dtype=np.float32), pad, mode="symmetric")
        large.voxel_size = small.voxel_size
    return target


def _engine(*arguments) -> list:
    return [sys.executable, "-m", "cryodiffseg", *(str(a) for a in arguments)]


def _has_shape(path: Path, shape: Sequence[int]) -> bool:
    if not path.is_file():
        return False
    with mrcfile.mmap(path, permissive=True) as mrc:
        return tuple(mrc.data.shape) == tuple(shape)
