"""Model checkpoints: safetensors weights plus a JSON record of everything needed to use them.

Loading never executes code from the file (unlike pickled checkpoints). The record says what kind of
model it is, how to build it, how inputs were normalised, and the voxel size it was trained at.
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
    return state, record
