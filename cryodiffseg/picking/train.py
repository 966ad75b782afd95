"""Training the particle picker on pseudo-points: resumable, keeping the best and the last weights.

The output folder holds ``best/`` and ``last/`` (checkpoints of kind ``particle-picker``),
``state/training_state.pt`` (what a resumed run continues from) and ``training.json`` (settings,
sources, loss history). "Best" is judged on a fixed batch of samples scored in inference mode after
every ``checkpoint_every`` iterations: not a held-out estimate (the pseudo-points are too few to
spare), but a noise-free comparison between checkpoints that also catches a collapse of the
BatchNorm statistics.
"""

import dataclasses
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoints import damaged_state, load_checkpoint, load_training_state, load_weights, save_checkpoint, stop_unless_finite
from ..errors import CryoDiffSegError
from ..features.backbone import resolve_device
from ..progress import Progress
from ..pseudolabel.manifest import content_fingerprint
from ..records import to_jsonable, write_json
from ..tomoio import atomic_path
from .calibration import Calibration, calibrate_threshold
from .data import SampleDrawer, open_source, require_points
from .heatmap import heatmap_sigma, particle_diameter_voxels
from .network import KIND, PickerConfig
from .pick import Picker, PickingConfig, predict_slab
from .volume import CLIP_STD

log = logging.getLogger("cryodiffseg")

STATE = Path("state") / "training_state.pt"
# Settings that may change between a run and its resumption.
_RESUMABLE_CHANGES = ("iterations", "device", "resume")


@dataclass
class PickerTrainingConfig:
    iterations: int = 400
    batch_size: int = 8
    patch_size: int = 64  # px, rounded up to the network's size multiple
    learning_rate: float = 2e-3
    particle_diameter_nm: float = 25.0  # a ribosome
    particle_diameter_voxels: Optional[float] = None  # overrides the nm value (voxels of the training grid)
    positive_fraction: float = 0.5  # share of samples placed around a pseudo-point
    positive_weight: float = 10.0  # loss weight of a pixel is 1 + this x its target value
    checkpoint_every: int = 50
    monitor_samples: int = 32
    seed: int = 0
    device: str = "auto"
    resume: bool = True
    architecture: PickerConfig = field(default_factory=PickerConfig)


def heatmap_loss(logits: torch.Tensor, targets: torch.Tensor, positive_weight: float) -> torch.Tensor:
    """Binary cross-entropy against the Gaussian targets, weighted up near particle centres.

    Particle pixels are a few percent of a slice; unweighted, "no particle anywhere" is a cheap optimum.
    """
    return F.binary_cross_entropy_with_logits(logits, targets, weight=1.0 + positive_weight * targets)


def train_picker(pseudolabel_dirs: Sequence, out_dir, config: Optional[PickerTrainingConfig] = None) -> Path:
    """Train on the pseudo-points of ``pseudolabel_dirs``; return the folder of the best checkpoint."""
    config = config or PickerTrainingConfig()
    check_picker_inputs(pseudolabel_dirs, config)
    out_dir = Path(out_dir)
    first = open_source(pseudolabel_dirs[0])
    voxel_size = first.volume.voxel_size_A  # other tomograms are resampled to the first one's grid
    sources = [first] + [open_source(folder, voxel_size) for folder in pseudolabel_dirs[1:]]
    diameter = config.particle_diameter_voxels or particle_diameter_voxels(config.particle_diameter_nm, voxel_size)
    sigma = heatmap_sigma(diameter / 2)
    architecture = config.architecture
    multiple = architecture.size_multiple
    patch = -(-config.patch_size // multiple) * multiple
    device = resolve_device(config.device)
    settings = to_jsonable(dataclasses.asdict(config))
    # Resuming needs the same data: the same folders holding the same labels.
    settings["pseudolabels"] = [{"folder": str(Path(folder).resolve()), "labels": content_fingerprint(folder)} for folder in pseudolabel_dirs]
    record = {
        "kind": KIND,
        "architecture": architecture.to_record(),
        "normalisation": {"method": "per-tomogram standardisation: mean 0, std 1 over evenly spaced slices", "clip_std": CLIP_STD},
        "voxel_size_A": voxel_size,
        "particle_diameter_voxels": diameter,
        "particle_diameter_nm": diameter * voxel_size / 10.0,
        "heatmap_sigma_voxels": sigma,
        "sources": [source.describe() for source in sources],
        "cryodiffseg_version": __version__,
    }
    log.info("Training the picker on %d pseudo-points of %d tomogram(s) at %.2f A/voxel: particle %.1f voxels",
             sum(len(s.points_xyz) for s in sources), len(sources), voxel_size, diameter)

    torch.manual_seed(config.seed)
    model = architecture.build().to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _cosine(step, config.iterations))
    drawer = functools.partial(SampleDrawer, sources, architecture.context_slices, patch, sigma, config.positive_fraction)
    monitor = [torch.from_numpy(a).to(device) for a in drawer(config.seed + 1).batch(config.monitor_samples, augment=False)]

    start, history, best = 0, [], float("inf")
    state_path = out_dir / STATE
    if config.resume and state_path.is_file():
        start, history, best = _load_state(state_path, settings, model, optimiser, schedule)
        log.info("Resuming picker training at iteration %d of %d from %s", start, config.iterations, state_path)
    if not history:
        history.append({"iteration": 0, "monitor_loss": round(_monitor_loss(model, monitor, config), 6)})

    samples = drawer(config.seed + 1000 + start)
    progress = Progress("picker training", max(0, config.iterations - start), min_interval=10.0)
    began = time.monotonic()
    running = None
    for step in range(start, config.iterations):
        model.train()
        stacks, targets = (torch.from_numpy(a).to(device) for a in samples.batch(config.batch_size))
        loss = heatmap_loss(model(stacks), targets, config.positive_weight)
        stop_unless_finite(loss, "picker training", step, state_path)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        progress.step(detail=f"loss {running:.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.iterations:
            monitor_loss = _monitor_loss(model, monitor, config)
            history.append({"iteration": step + 1, "training_loss": round(running, 6), "monitor_loss": round(monitor_loss, 6)})
            checkpoint = {**record, "iteration": step + 1, "monitor_loss": monitor_loss}
            save_checkpoint(out_dir / "last", model.state_dict(), checkpoint)
            if monitor_loss < best:
                best = monitor_loss
                save_checkpoint(out_dir / "best", model.state_dict(), checkpoint)
            _save_state(state_path, step + 1, history, best, settings, model, optimiser, schedule)
    if not (out_dir / "best").is_dir():  # resumed after the end, or a run killed before its first checkpoint
        raise CryoDiffSegError(f"{out_dir} holds no finished checkpoint: train again with --no-resume.")
    calibration = _calibrate_best(out_dir / "best", model, architecture, sources, diameter, device)
    write_json(out_dir / "training.json", {**record, "config": settings, "history": history, "threshold": calibration.threshold,
                                           "threshold_calibration": calibration.to_record(),
                                           "wall_time_s": round(time.monotonic() - began, 1)})
    log.info("Picker written to %s (best monitor loss %.4f, threshold %.2f)", out_dir / "best", best, calibration.threshold)
    return out_dir / "best"


def check_picker_inputs(pseudolabel_dirs: Sequence, config: PickerTrainingConfig) -> None:
    """Settings, pseudo-points and particle diameter, checked cheaply: `train` checks them before training
    the membrane U-Net, so a picker that cannot train never waits for it."""
    if not pseudolabel_dirs:
        raise CryoDiffSegError("No pseudo-label folders were given to train the picker on.")
    if config.iterations < 1 or config.batch_size < 1 or config.checkpoint_every < 1:
        raise CryoDiffSegError("Picker training needs at least one iteration, batch size 1 and checkpoint interval 1.")
    diameter = config.particle_diameter_nm if config.particle_diameter_voxels is None else config.particle_diameter_voxels
    if not 0 < diameter < math.inf:
        raise CryoDiffSegError(f"The particle diameter must be positive, got {diameter:g}.")
    require_points(pseudolabel_dirs)


def _calibrate_best(folder: Path, model, architecture: PickerConfig, sources, diameter: float, device) -> Calibration:
    """Calibrate the best checkpoint's score threshold on the held-out points and store it in its record."""
    state, record = load_checkpoint(folder, KIND)
    load_weights(model, state, str(folder))
    picker = Picker(model.eval(), architecture, float(record["voxel_size_A"]), diameter, record)
    scoring = PickingConfig(device=str(device))
    calibration = calibrate_threshold(sources, diameter / 2, lambda volume, z_range: predict_slab(picker, volume, z_range, scoring, device))
    save_checkpoint(folder, state, {**record, "threshold": calibration.threshold, "threshold_calibration": calibration.to_record()})
    return calibration


def _cosine(step: int, total: int) -> float:
    """Learning-rate factor: a half cosine from 1 down to 0 over the run."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))


@torch.no_grad()
def _monitor_loss(model, monitor: Tuple[torch.Tensor, torch.Tensor], config: PickerTrainingConfig) -> float:
    model.eval()
    stacks, targets = monitor
    return float(heatmap_loss(model(stacks), targets, config.positive_weight))


def _save_state(path: Path, step: int, history, best: float, settings: dict, model, optimiser, schedule) -> None:
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "schedule": schedule.state_dict(),
        "history": json.dumps(history),
        "best": best,
        "config": json.dumps(settings, sort_keys=True),
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, settings: dict, model, optimiser, schedule):
    state = load_training_state(path)
    try:
        saved = json.loads(state["config"])
        if {k: v for k, v in saved.items() if k not in _RESUMABLE_CHANGES} != {
            k: v for k, v in settings.items() if k not in _RESUMABLE_CHANGES
        }:
            raise CryoDiffSegError(f"The picker state in {path.parent} was trained with other settings; use another --out or --no-resume.")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        return int(state["step"]), json.loads(state["history"]), float(state["best"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
        raise damaged_state(path) from None
