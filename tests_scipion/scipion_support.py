"""Test helpers: the engine command, generated tomograms, a tiny backbone, protocols launched with a deadline."""

import os
import subprocess
import time

import mrcfile
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.environ.get("CRYODIFFSEG_ENGINE")

requiresEngine = pytest.mark.skipif(not ENGINE, reason="set CRYODIFFSEG_ENGINE to the cryodiffseg command to run "
                                                       "the engine end to end")


def engineEnvironment():
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def runEngine(*args, timeout=600):
    """Run the engine command directly (test set-up only); its output on failure."""
    result = subprocess.run([ENGINE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            env=engineEnvironment())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def buildTinyBackbone(folder):
    """A tiny random-weight Stable Diffusion folder, built by the engine's Python (it needs torch)."""
    python = os.environ.get("CRYODIFFSEG_ENGINE_PYTHON", os.path.join(os.path.dirname(ENGINE), "python"))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from tiny_models import build_tiny_stable_diffusion; "
              "build_tiny_stable_diffusion(sys.argv[2])")
    result = subprocess.run([python, "-c", script, os.path.join(REPO, "tests"), folder], capture_output=True,
                            text=True, timeout=600, env=engineEnvironment())
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def writeTomogram(path, shape_zyx, voxelSize, seed=0):
    """A small noisy volume with dark rings (membranes) and dark blobs (particles), as float32 MRC."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape_zyx, dtype=np.float32)
    volume = rng.normal(0, 0.3, shape_zyx).astype(np.float32)
    for _ in range(2):
        cy, cx = rng.uniform(0.3, 0.7) * shape_zyx[1], rng.uniform(0.3, 0.7) * shape_zyx[2]
        radius = rng.uniform(0.15, 0.25) * min(shape_zyx[1:])
        volume -= np.exp(-((np.hypot(y - cy, x - cx) - radius) ** 2) / 2.0)
    for _ in range(6):
        centre = rng.uniform(0.1, 0.9, 3) * np.array(shape_zyx)
        volume -= 1.5 * np.exp(-((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) / 8.0)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = voxelSize
    return path


def writeDataSets(representative, dataset, tsIds, brokenTsId, shape_zyx, voxelSize):
    """Tomograms of the representative folder, the data set linking to them plus one truncated file."""
    os.makedirs(representative)
    os.makedirs(dataset)
    for seed, tsId in enumerate(tsIds):
        writeTomogram(os.path.join(representative, f"{tsId}.mrc"), shape_zyx, voxelSize, seed=seed)
        os.symlink(os.path.join(representative, f"{tsId}.mrc"), os.path.join(dataset, f"{tsId}.mrc"))
    broken = writeTomogram(os.path.join(dataset, f"{brokenTsId}.mrc"), shape_zyx, voxelSize)
    with open(broken, "r+b") as handle:
        handle.truncate(4096)


def launchWithDeadline(test, protocol, seconds=600):
    """Launch a protocol and wait; a protocol still running after `seconds` is stopped and the test fails."""
    test.proj.launchProtocol(protocol, wait=False)
    deadline = time.monotonic() + seconds
    while True:
        test.proj._updateProtocol(protocol)  # reloads its status and outputs from its run database
        if not protocol.isActive():
            break
        if time.monotonic() > deadline:
            test.proj.stopProtocol(protocol)
            test.printLastLogLines(protocol)
            pytest.fail(f"{protocol.getRunName()} still ran after {seconds} s: stopped.")
        time.sleep(2)
    if not protocol.isFinished():
        test.printLastLogLines(protocol)
        pytest.fail(f"{protocol.getRunName()} ended {protocol.getStatus()}: {protocol.getErrorMessage()}")
    return protocol


def stepIntervals(protocol, functionName):
    """(start, end) datetimes of the steps that ran functionName."""
    return [(step.initTime.datetime(), step.endTime.datetime())
            for step in protocol.loadSteps() if step.funcName.get() == functionName]
