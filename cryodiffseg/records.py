"""JSON records (manifests, recipes, reports) written atomically."""

import json
import os
from pathlib import Path

from .tomoio import write_text


def to_jsonable(value):
    """Dataclass dicts -> plain JSON values (tuples become lists, paths and other objects strings)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: os.PathLike, record) -> Path:
    return write_text(path, json.dumps(to_jsonable(record), indent=2))
