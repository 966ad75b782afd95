"""Model checkpoints: safetensors weights plus a JSON record of everything needed to use them.

Loading never executes code from the file (unlike pickled checkpoints). The record says what kind of
model it is, how to build it, how inputs were normalised, and the voxel size it was trained at. Weights
that are not finite (a diverged training) are never saved, loaded or trained on. Training states (torch
files, for resuming) are loaded with ``weights_only`` and any failure is our own one line: torch's
messages run to dozens of lines and advise loading untrusted files with code execution.
"""

import json
import os
import pickle
from pathlib import Path
from typing import Dict, Tuple

import torch

from .errors import CryoDiffSegError
from .records import write_json
from .tomoio import atomic_path

WEIGHTS = "model.safetensors"
RECORD = "model.json"


def save_checkpoint(folder: os.PathLike, state_dict: Dict[str, torch.Tensor], record: dict) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/model.json`` (record must carry a ``kind``)."""
    from safetensors.torch import save_file

    if "kind" not in record:
        raise ValueError("A checkpoint record needs a 'kind'.")
    if not all_finite(state_dict):
        raise CryoDiffSegError(f"Not saving non-finite weights to {folder}: the training diverged.")
    folder = Path(folder)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / RECORD, record)
    return folder


def load_checkpoint(folder: os.PathLike, kind: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(state dict, record) of a checkpoint of the given kind; a clear error otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise CryoDiffSegError(f"Model folder not found: {folder}")
    if not (folder / RECORD).is_file() or not (folder / WEIGHTS).is_file():
        raise CryoDiffSegError(f"{folder} is not a cryodiffseg model: it needs {WEIGHTS} and {RECORD}.")
    try:
        record = json.loads((folder / RECORD).read_text())
        state = load_file(str(folder / WEIGHTS))
    except (ValueError, OSError, SafetensorError) as exc:
        raise CryoDiffSegError(f"Cannot read the model in {folder}: {exc}") from None
    if not isinstance(record, dict):
        raise CryoDiffSegError(f"The record {folder / RECORD} is not a JSON object: {folder} is not a cryodiffseg model.")
    if record.get("kind") != kind:
        raise CryoDiffSegError(f"{folder} holds a '{record.get('kind')}' model, not a '{kind}' model.")
    if not all_finite(state):
        raise CryoDiffSegError(f"The model in {folder} has non-finite weights (NaN or infinity): its training diverged.")
    return state, record


def load_weights(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; a mismatch is summarised in one line (torch lists every tensor)."""
    try:
        model.load_state_dict(state)
    except RuntimeError:
        expected = model.state_dict()
        missing = sum(name not in state for name in expected)
        unexpected = sum(name not in expected for name in state)
        reshaped = sum(name in state and tuple(state[name].shape) != tuple(tensor.shape) for name, tensor in expected.items())
        raise CryoDiffSegError(
            f"The weights in {source} do not fit the architecture it records ({missing} missing, {unexpected} unexpected, "
            f"{reshaped} of another shape): a damaged file or one from another version."
        ) from None


def load_training_state(path: os.PathLike) -> dict:
    """A training state saved with ``torch.save``, loaded without running code from the file."""
    restart = "delete it, or pass --no-resume, to start over"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CryoDiffSegError(f"The training state {path} holds more than tensors and was not loaded (it could run code): {restart}.") from None
    except Exception:  # torch raises many types for truncated or foreign files
        raise CryoDiffSegError(f"Cannot read the training state {path} (truncated, or not a training state): {restart}.") from None
    if not isinstance(state, dict):
        raise CryoDiffSegError(f"{path} is not a cryodiffseg training state: {restart}.")
    return state


def damaged_state(path: os.PathLike) -> CryoDiffSegError:
    """The error for a training state that loads but lacks what this version saves."""
    return CryoDiffSegError(f"The training state {path} is incomplete or from another version: delete it, or pass --no-resume, to start over.")


def all_finite(state_dict: Dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values() if t.is_floating_point())


def stop_unless_finite(loss: torch.Tensor, training: str, iteration: int, kept: os.PathLike) -> None:
    """Stop a diverged training before the step that would spoil its weights; what was saved stays."""
    if not torch.isfinite(loss).all():
        raise CryoDiffSegError(
            f"{training}: the loss is not finite at iteration {iteration + 1} (lower --learning-rate?); "
            f"stopped, the last good checkpoint in {kept} is kept."
        )
