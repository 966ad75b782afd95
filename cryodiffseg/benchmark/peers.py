"""Our segmentation beside MemBrain-seg's, on the same tomograms in the same run: wall time and peak memory.

MemBrain-seg is installed from PyPI into its own virtual environment under the work folder (torch first, the
pinned CPU wheel), never into the engine's; both sides run in child processes whose own peak resident memory
is read from the kernel. The peer runs its network with random weights (speed does not depend on them), one
pass as `membrain segment --no-test-time-augmentation`; its default 8-fold test-time augmentation is counted
as 8 passes. Where its whole run would take hours (a 1k x 1k tomogram on a CPU), it is stopped after a few
sliding windows and its network time extrapolated to all windows; the table says which figures are so.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .speed import child_usage, segment_in_subprocess

PEER_PACKAGE = "membrain-seg==0.0.10"
PEER_TORCH = "torch==2.13.0"  # the pinned CPU wheel, installed first so that nothing pulls a CUDA build
# Its command-line modules import click, which current typer (its declared dependency) no longer brings.
PEER_EXTRAS = ("click",)
PEER_SCRIPT = Path(__file__).with_name("membrain_peer.py")
TEST_TIME_AUGMENTATION_PASSES = 8


def install_peer(folder: Path) -> Path:
    """MemBrain-seg's Python, installed into ``folder`` once (a marker file says the install finished)."""
    python = folder / "bin" / "python"
    done = folder / "installed.txt"
    if done.is_file() and done.read_text().strip() == PEER_PACKAGE:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    for requirement in (PEER_TORCH, PEER_PACKAGE, *PEER_EXTRAS):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement], check=True)
    done.write_text(PEER_PACKAGE + "\n")
    return python


def run_peer(python: Path, tomogram: Path, work: Path, max_windows: int = 0) -> dict:
    """The peer script's JSON line, with the child's wall time and peak resident memory."""
    (work / "out").mkdir(parents=True, exist_ok=True)
    command = [str(python), str(PEER_SCRIPT), str(tomogram), "--work", str(work)]
    if max_windows:
        command += ["--max-windows", str(max_windows)]
    measured = child_usage(command, work / "peer.log")
    lines = [line for line in (work / "peer.log").read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"MemBrain-seg printed no result; see {work / 'peer.log'}")
    return peer_estimate(json.loads(lines[-1]), measured)


def peer_estimate(report: dict, measured: Dict[str, float]) -> dict:
    """One pass of the peer over the whole tomogram: measured if it ran every window, else its time before
    the first window plus every window at the median window time (writing the output is then not counted)."""
    complete = bool(report["complete"])
    if complete:
        one_pass = measured["wall_s"]
    else:
        one_pass = measured["wall_s"] - report["wall_s"] + report["s_before_first_window"] + report["windows_expected"] * report["s_per_window_median"]
    return {"complete": complete, "windows_run": report["windows_run"], "windows_expected": report["windows_expected"],
            "s_per_window_median": round(report["s_per_window_median"], 2), "one_pass_s": round(one_pass, 1),
            "default_8_passes_s": round(one_pass * TEST_TIME_AUGMENTATION_PASSES, 1),
            "peak_rss_GiB": round(measured["peak_rss_GiB"], 3), "peak_is_lower_bound": not complete}


def ours(tomogram: Path, model: Path, out: Path) -> dict:
    """`cryodiffseg segment` with the reference U-Net (random weights) in a child process."""
    measured = segment_in_subprocess(tomogram, model, out)
    return {"wall_s": round(measured["wall_s"], 1), "peak_rss_GiB": round(measured["peak_rss_GiB"], 3)}


def compare(shape: Sequence[int], input_gib: float, our: dict, peer: Optional[dict]) -> dict:
    """The ratios the issue's goals are stated in, for one tomogram."""
    voxels = float(np.prod(shape))
    row = {"shape_zyx": list(shape), "input_GiB": round(input_gib, 3), "ours": {**our, "voxels_per_s": round(voxels / our["wall_s"])},
           "ours_peak_minus_input_GiB": round(our["peak_rss_GiB"] - input_gib, 3), "peer": peer}
    if peer is not None:
        peer["voxels_per_s_one_pass"] = round(voxels / peer["one_pass_s"])
        row["throughput_ratio_one_pass"] = round(peer["one_pass_s"] / our["wall_s"], 1)
        row["throughput_ratio_peer_default"] = round(peer["default_8_passes_s"] / our["wall_s"], 1)
        row["memory_ratio"] = round(our["peak_rss_GiB"] / peer["peak_rss_GiB"], 3)
    return row


def run_peer_bench(work: Path, tomograms: Sequence[Path], model: Path, max_windows: Dict[str, int], with_peer: bool = True) -> dict:
    """Both sides on every tomogram; ``max_windows`` by tomogram name (0 or absent: the peer's whole run)."""
    import mrcfile

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    python = install_peer(work / "membrain-venv") if with_peer else None
    rows = []
    for tomogram in tomograms:
        with mrcfile.mmap(tomogram, permissive=True) as mrc:
            shape = mrc.data.shape
        input_gib = Path(tomogram).stat().st_size / 2**30
        our = ours(Path(tomogram), model, work / f"ours-{Path(tomogram).stem}")
        peer = run_peer(python, Path(tomogram), work / f"peer-{Path(tomogram).stem}", max_windows.get(Path(tomogram).name, 0)) if python else None
        rows.append({"tomogram": Path(tomogram).name, **compare(shape, input_gib, our, peer)})
    return {"peer": PEER_PACKAGE if with_peer else None, "rows": rows}
