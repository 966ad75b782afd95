"""What a benchmark ran on: cores, memory, CPU/GPU model and library versions."""

import os
import platform
import time


def _shipped_backbone_version() -> str:
    """The shipped compact backbone's training length, so a figure can be tied to the weights it measured."""
    import json

    from ..features.backbone import SHIPPED_PATH

    try:
        recipe = json.loads((SHIPPED_PATH / "recipe.json").read_text())
        return f"{recipe['config']['iterations']} iterations"
    except (OSError, ValueError, KeyError):
        return "absent"


def machine_summary() -> dict:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("diffusers", "scipy", "scikit-image", "cellpose"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    from .. import __version__

    versions["cryodiffseg"] = __version__
    versions["shipped backbone"] = _shipped_backbone_version()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_GiB": memory_gib,
        "gpu": gpu,
        "versions": versions,
    }
