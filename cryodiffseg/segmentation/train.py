"""Training the membrane U-Net on pseudo-labels; keeps the best model by validation loss; resumable.

``out_dir/model.safetensors`` + ``model.json`` is the model to segment with (kind "membrane-unet");
``out_dir/training_state/state.pt`` holds everything needed to continue (weights, optimiser, step,
best model so far), saved with plain tensors and values only so ``torch.load(weights_only=True)``
reads it. The random draws of iteration i depend only on (seed, i): a run interrupted and resumed
reproduces the uninterrupted one.
"""

import copy
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .. import __version__
from ..checkpoints import damaged_state, load_training_state, save_checkpoint, stop_unless_finite
from ..errors import CryoDiffSegError
from ..features.backbone import resolve_device
from ..progress import Progress
from ..records import to_jsonable
from ..tomoio import atomic_path
from ..pseudolabel.manifest import content_fingerprint
from .dataset import CropSampler, LabelledSlice, PseudoLabelSet, labelled_slices, read_pseudolabel_folder, split_slices
from .losses import hard_dice, membrane_loss
from .model import CLASSES, MODEL_KIND
from .normalisation import NORMALISATION
from .unet import UNet2D, UNetConfig

log = logging.getLogger("cryodiffseg")

STATE_FILE = Path("training_state") / "state.pt"
_VOXEL_SIZE_TOLERANCE = 0.01  # pseudo-label sets whose voxel sizes differ by more cannot share a model
_RESUME_NEUTRAL = ("iterations", "device", "resume")  # settings a resumed run may change
_TRAINING_STREAM, _VALIDATION_STREAM = 0, 1  # independent random streams derived from the seed


@dataclass
class MembraneTrainingConfig:
    """Training settings; the defaults finish in minutes on a CPU, the paper's run is 30k iterations.

    ``crop_size`` must be a multiple of the U-Net's size multiple (16 for the reference 5 levels).
    Validation uses ``validation_crops`` fixed, un-augmented crops of the validation slices.
    """

    iterations: int = 300
    batch_size: int = 8
    crop_size: int = 96
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    validate_every: int = 50
    validation_crops: int = 16
    flips: bool = True  # random rot90 and mirror
    max_rotation_deg: float = 20.0  # random rotation within +-this; 0 switches it off
    seed: int = 0
    device: str = "auto"
    resume: bool = True  # continue from out_dir/training_state when its settings match
    architecture: UNetConfig = field(default_factory=UNetConfig)


def train_membrane_model(
    pseudolabel_dirs: Sequence[os.PathLike], out_dir: os.PathLike, config: Optional[MembraneTrainingConfig] = None
) -> Path:
    """Train on the labelled slices of ``pseudolabel_dirs``; return ``out_dir`` holding the best model."""
    config = config or MembraneTrainingConfig()
    _check_config(config)
    if not pseudolabel_dirs:
        raise CryoDiffSegError("Training needs at least one pseudo-label folder.")
    out_dir = Path(out_dir)
    sets = [read_pseudolabel_folder(folder) for folder in pseudolabel_dirs]
    voxel_size = _common_voxel_size(sets)
    slices = labelled_slices(sets)
    train, validation = split_slices(slices, config.validation_fraction, config.seed)
    if not validation:
        log.warning("Only %d labelled slice(s): training without validation, the last weights are kept.", len(slices))
    log.info("Training on %d labelled slice(s), validating on %d, from %d pseudo-label folder(s) at %.3f A/voxel",
             len(train), len(validation), len(sets), voxel_size)

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # initial weights
    # Channels-last convolutions train about a fifth faster on CPU (oneDNN) and suit GPU tensor cores.
    model = UNet2D(config.architecture).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
    )
    settings = _settings(config, sets)
    state = TrainingState()
    state_path = out_dir / STATE_FILE
    if config.resume and state_path.is_file():
        state = TrainingState.load(state_path, settings, model, optimiser)
        log.info("Resuming membrane training at iteration %d of %d from %s", state.step, config.iterations, state_path)

    sampler = CropSampler(sets, train, config.crop_size, config.flips, config.max_rotation_deg)
    validation_batch = _validation_batch(sets, validation, config)
    progress = Progress("membrane training", max(config.iterations - state.step, 0), min_interval=30.0)
    began = time.monotonic()
    running = None
    for step in range(state.step, config.iterations):
        rng = np.random.default_rng([config.seed, _TRAINING_STREAM, step])
        torch.manual_seed(int(rng.integers(2**63)))  # dropout
        images, labels = sampler.batch(config.batch_size, rng)
        model.train()
        loss = membrane_loss(model(images.to(device, memory_format=torch.channels_last)), labels.to(device))
        stop_unless_finite(loss, "membrane training", step, state_path)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        state.step = step + 1
        progress.step(detail=f"loss {running:.4f}")
        if state.step % config.validate_every == 0 or state.step == config.iterations:
            entry = {"iteration": state.step, "train_loss": round(running, 5)}
            if validation_batch is not None:
                entry.update(_validate(model, validation_batch, device))
                stop_unless_finite(torch.tensor(entry["validation_loss"]), "membrane training (validation)", step, state_path)
                if state.best is None or entry["validation_loss"] < state.best["validation_loss"]:
                    state.best = dict(entry)
                    state.best_weights = _cpu_copy(model.state_dict())
            state.history.append(entry)
            log.info("Iteration %d: %s", state.step, ", ".join(f"{k} {v}" for k, v in entry.items() if k != "iteration"))
            state.save(state_path, settings, model, optimiser)
            _export(out_dir, state, model, config, sets, train, validation, voxel_size)
    if not (out_dir / "model.safetensors").is_file():  # resumed after the last iteration: re-export only
        _export(out_dir, state, model, config, sets, train, validation, voxel_size)
    log.info("Membrane model in %s after %d iterations (%.0f s this run); best validation: %s",
             out_dir, state.step, time.monotonic() - began, state.best)
    return out_dir


@dataclass
class TrainingState:
    """What a resumed run needs beyond the model and optimiser."""

    step: int = 0
    best: Optional[dict] = None  # the history entry of the best validation loss
    best_weights: Optional[Dict[str, torch.Tensor]] = None
    history: List[dict] = field(default_factory=list)

    def save(self, path: Path, settings: dict, model, optimiser) -> None:
        payload = {
            "step": self.step,
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "best_model": self.best_weights or {},
            "best": json.dumps(self.best),
            "history": json.dumps(self.history),
            "settings": json.dumps(settings, sort_keys=True),
        }
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: Path, settings: dict, model, optimiser) -> "TrainingState":
        payload = load_training_state(path)
        try:
            saved = json.loads(payload["settings"])
            if _without_neutral(saved) != _without_neutral(settings):
                raise CryoDiffSegError(
                    f"The training state in {path.parent} comes from other settings or data; use another --out or --no-resume."
                )
            model.load_state_dict(payload["model"])
            optimiser.load_state_dict(payload["optimiser"])
            return cls(
                step=int(payload["step"]),
                best=json.loads(payload["best"]),
                best_weights=payload["best_model"] or None,
                history=json.loads(payload["history"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
            raise damaged_state(path) from None


def _check_config(config: MembraneTrainingConfig) -> None:
    multiple = config.architecture.size_multiple
    if config.crop_size < multiple or config.crop_size % multiple:
        raise CryoDiffSegError(f"The crop size must be a positive multiple of {multiple} px, got {config.crop_size}.")
    if config.iterations < 1 or config.batch_size < 1 or config.validate_every < 1 or config.validation_crops < 1:
        raise CryoDiffSegError("Iterations, batch size, validation interval and validation crops must all be at least 1.")
    if not 0 <= config.validation_fraction < 1:
        raise CryoDiffSegError(f"The validation fraction must be in [0, 1), got {config.validation_fraction}.")


def _common_voxel_size(sets: Sequence[PseudoLabelSet]) -> float:
    first = sets[0].tomogram.voxel_size
    for pseudo in sets[1:]:
        if abs(pseudo.tomogram.voxel_size - first) > _VOXEL_SIZE_TOLERANCE * first:
            raise CryoDiffSegError(
                f"{pseudo.folder} is at {pseudo.tomogram.voxel_size:.3f} A/voxel and {sets[0].folder} at {first:.3f}: "
                "train one model per voxel size."
            )
    return first


def _settings(config: MembraneTrainingConfig, sets: Sequence[PseudoLabelSet]) -> dict:
    """Everything a resumed run must share with the saved one: the training settings and the data."""
    return {
        "config": to_jsonable(dataclasses.asdict(config)),
        "data": [{"tomogram": str(s.tomogram.path.resolve()), "slices": s.labelled_slices, "labels": content_fingerprint(s.folder)}
                 for s in sets],
    }


def _without_neutral(settings: dict) -> dict:
    settings = copy.deepcopy(settings)
    for key in _RESUME_NEUTRAL:
        settings["config"].pop(key, None)
    return settings


def _validation_batch(sets, validation: Sequence[LabelledSlice], config: MembraneTrainingConfig):
    """Fixed un-augmented crops, spread evenly over the validation slices (None without validation)."""
    if not validation:
        return None
    sampler = CropSampler(sets, validation, config.crop_size, flips=False, max_rotation_deg=0.0)
    count = max(config.validation_crops, len(validation))
    return sampler.crops(np.arange(count) % len(validation), np.random.default_rng([config.seed, _VALIDATION_STREAM]))


@torch.no_grad()
def _validate(model, batch, device) -> dict:
    images, labels = batch
    model.eval()
    logits = torch.cat([model(part.to(device)) for part in images.split(8)])
    labels = labels.to(device)
    return {
        "validation_loss": round(float(membrane_loss(logits, labels)), 5),
        "validation_dice": round(hard_dice(logits, labels), 5),
    }


def _cpu_copy(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state_dict.items()}


def _export(out_dir: Path, state: TrainingState, model, config, sets, train, validation, voxel_size: float) -> None:
    """Write the best weights so far (the current ones without validation) and their record."""
    weights = state.best_weights if state.best_weights is not None else model.state_dict()

    def slice_list(subset, index):
        return [s.z for s in subset if s.set_index == index]

    record = {
        "kind": MODEL_KIND,
        "cryodiffseg_version": __version__,
        "architecture": config.architecture.to_dict(),
        "classes": list(CLASSES),
        "normalisation": NORMALISATION,
        "voxel_size_A": voxel_size,
        "sources": [
            {
                "folder": str(s.folder.resolve()),
                "tomogram": str(s.tomogram.path.resolve()),
                "train_slices": slice_list(train, i),
                "validation_slices": slice_list(validation, i),
            }
            for i, s in enumerate(sets)
        ],
        "iterations": state.step,
        "best_validation": state.best,
        "history": state.history,
        "training": to_jsonable(dataclasses.asdict(config)),
    }
    save_checkpoint(out_dir, weights, record)
