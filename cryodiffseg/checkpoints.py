"""Model checkpoints: safetensors weights plus a JSON record of everything needed to use them.

Loading never executes code from the file (unlike pickled checkpoints). The record says what kind of
model it is, how to build it, how inputs were normalised, and the voxel size it was trained at. Weights
that are not finite (a diverged training) are never saved, loaded or trained on.
"""

import json
import os
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
    if record.get("kind") != kind:
        raise CryoDiffSegError(f"{folder} holds a '{record.get('kind')}' model, not a '{kind}' model.")
    if not all_finite(state):
        raise CryoDiffSegError(f"The model in {folder} has non-finite weights (NaN or infinity): its training diverged.")
    return state, record


def all_finite(state_dict: Dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values() if t.is_floating_point())


def stop_unless_finite(loss: torch.Tensor, training: str, iteration: int, kept: os.PathLike) -> None:
    """Stop a diverged training before the step that would spoil its weights; what was saved stays."""
    if not torch.isfinite(loss).all():
        raise CryoDiffSegError(
            f"{training}: the loss is not finite at iteration {iteration + 1} (lower --learning-rate?); "
            f"stopped, the last good checkpoint in {kept} is kept."
        )
