"""Training the compact backbone with the standard noise-prediction objective; resumable.

The output folder is a diffusers model folder (``unet/``, ``scheduler/``) plus ``cryodiffseg.json`` (how
tiles enter the model) and ``recipe.json`` (the exact settings, data and seed), loadable with
``--backbone FOLDER``. The exported weights are the exponential moving average of the trained ones.
"""

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoints import damaged_state, load_training_state, stop_unless_finite
from ..errors import CryoDiffSegError
from ..progress import Progress
from ..records import to_jsonable, write_json
from ..tomoio import atomic_path
from .architecture import CompactUNetConfig, build_scheduler
from .data import CropSampler, SyntheticVariety, synthetic_slices, tomogram_slices

log = logging.getLogger("cryodiffseg")

PIXEL_UNSHUFFLE = 2  # 2 x 2 pixel blocks are folded into 4 channels: a 128-px tile runs at 64 x 64


@dataclass
class BackboneTrainingConfig:
    iterations: int = 3000
    batch_size: int = 8
    learning_rate: float = 3e-4
    warmup: int = 200
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    tomograms: List[str] = field(default_factory=list)
    tomogram_voxel_size: Optional[float] = None
    user_fraction: float = 0.5  # share of crops from user tomograms when some are given
    # Features are read at light noise (t <= 68 at 1 nm voxels), so part of each batch draws its
    # timestep from [0, low_noise_max) instead of the full range.
    low_noise_fraction: float = 0.5
    low_noise_max: int = 250
    synthetic: SyntheticVariety = field(default_factory=SyntheticVariety)
    architecture: CompactUNetConfig = field(default_factory=CompactUNetConfig)


def train_backbone(out_dir, config: BackboneTrainingConfig, resume: bool = True) -> Path:
    from diffusers.training_utils import EMAModel

    from ..features.backbone import resolve_device

    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    crop = config.architecture.sample_size * PIXEL_UNSHUFFLE
    state_path = out_dir / "checkpoint" / "state.pt"
    recipe = {"config": to_jsonable(dataclasses.asdict(config)), "command": " ".join(sys.argv), "cryodiffseg_version": __version__}

    model = config.architecture.build().to(device)
    scheduler = build_scheduler()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / max(1, config.warmup)))
    ema = EMAModel(model.parameters(), decay=config.ema_decay)
    start, history = 0, []
    if resume and state_path.is_file():
        start, history = _load_state(state_path, recipe, model, optimiser, warmup, ema)
        log.info("Resuming backbone training at iteration %d of %d from %s", start, config.iterations, state_path)

    if start < config.iterations:  # a finished run only re-exports: no data needed
        sampler = CropSampler(
            synthetic_slices(config.synthetic, config.seed),
            tomogram_slices(config.tomograms, crop=crop, voxel_size=config.tomogram_voxel_size),
            crop,
            config.user_fraction,
            seed=config.seed + start,
        )
        log.info("Training a %.1f M-parameter backbone on %s for %d iterations (batch %d, %d-px crops)",
                 sum(p.numel() for p in model.parameters()) / 1e6, device, config.iterations, config.batch_size, crop)
    generator = torch.Generator().manual_seed(config.seed + start)
    progress = Progress("backbone training", config.iterations - start, min_interval=30.0)
    running = None
    began = time.monotonic()
    model.train()
    for step in range(start, config.iterations):
        clean = F.pixel_unshuffle(torch.from_numpy(sampler.batch(config.batch_size)), PIXEL_UNSHUFFLE).to(device)
        noise = torch.randn(clean.shape, generator=generator).to(device)
        timesteps = _timesteps(len(clean), scheduler.config.num_train_timesteps, config, generator).to(device)
        loss = F.mse_loss(model(scheduler.add_noise(clean, noise, timesteps), timesteps).sample, noise)
        stop_unless_finite(loss, "backbone training", step, state_path)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        warmup.step()
        ema.step(model.parameters())
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        progress.step(detail=f"loss {running:.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.iterations:
            history.append({"iteration": step + 1, "loss": round(running, 5)})
            _save_state(state_path, step + 1, history, recipe, model, optimiser, warmup, ema)
    recipe["history"] = history
    recipe["wall_time_s"] = round(time.monotonic() - began, 1)
    export_backbone(out_dir, model, ema, scheduler, recipe)
    return out_dir


def _timesteps(count: int, total: int, config: BackboneTrainingConfig, generator) -> torch.Tensor:
    full = torch.randint(0, total, (count,), generator=generator)
    low = torch.randint(0, min(config.low_noise_max, total), (count,), generator=generator)
    return torch.where(torch.rand(count, generator=generator) < config.low_noise_fraction, low, full)


def export_backbone(out_dir: Path, model, ema, scheduler, recipe: dict) -> None:
    """Write the EMA weights as a diffusers folder, atomically per file."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        model.save_pretrained(out_dir / "unet", safe_serialization=True)
    finally:
        ema.restore(model.parameters())
    scheduler.save_pretrained(out_dir / "scheduler")
    write_json(out_dir / "cryodiffseg.json", {"pixel_unshuffle": PIXEL_UNSHUFFLE, "input": "grey tile in [-1, 1]"})
    write_json(out_dir / "recipe.json", recipe)
    log.info("Backbone written to %s", out_dir)


def _save_state(path: Path, step: int, history, recipe, model, optimiser, warmup, ema) -> None:
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "warmup": warmup.state_dict(),
        "ema": ema.state_dict(),
        "history": history,
        "config": json.dumps(recipe["config"], sort_keys=True),
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, recipe, model, optimiser, warmup, ema) -> Tuple[int, list]:
    state = load_training_state(path)
    try:
        saved, current = json.loads(state["config"]), recipe["config"]
        if {k: v for k, v in saved.items() if k != "iterations"} != {k: v for k, v in current.items() if k != "iterations"}:
            raise CryoDiffSegError(
                f"The checkpoint in {path.parent} was trained with other settings; use another --out or --no-resume."
            )
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        warmup.load_state_dict(state["warmup"])
        ema.load_state_dict(state["ema"])
        return int(state["step"]), list(state["history"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
        raise damaged_state(path) from None
