"""Test helpers: the engine command, generated tomograms, a tiny backbone, projects that clean up after
themselves, protocols launched with a deadline.

Not named test*: Scipion's runner and pytest collect nothing here. Importing it has no side effect beyond
registering the installed plugins (which defines their variables): no project, no file.
"""

import os
import shutil
import subprocess
import time
import unittest

import mrcfile
import numpy as np
import pwem
from pyworkflow.project import Manager
from pyworkflow.tests import setupTestProject

from cryodiffseg_scipion import Plugin
from cryodiffseg_scipion.constants import ENGINE_VAR

# The engine's own tests folder, next to the plugin in a source checkout: it holds tiny_models.py.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEEP_VAR = "CRYODIFFSEG_TEST_KEEP"  # set: test projects stay in the user's data, for debugging

pwem.Domain.getPlugins()  # defines the plugins' variables, as Scipion does before running tests
# The engine the plugin itself would run: CRYODIFFSEG_ENGINE from the environment or Scipion's configuration.
ENGINE = Plugin.getVar(ENGINE_VAR)

requiresEngine = unittest.skipUnless(
    ENGINE and shutil.which(ENGINE),
    f"the engine command {ENGINE!r} does not exist: install it ('scipion3 installb cryodiffseg') or set "
    f"{ENGINE_VAR} to a cryodiffseg command to run the engine end to end")


NAPARI_PYTHON_VAR = "CRYODIFFSEG_TEST_NAPARI_PYTHON"  # a Python with napari and mrcfile (default: .venv-napari)
REQUIRE_NAPARI_VAR = "CRYODIFFSEG_REQUIRE_NAPARI"  # 1: a missing napari or Xvfb fails the viewer tests (CI)


def realNapariOrSkip():
    """Shell words that run a Python with napari on a virtual display (xvfb-run); without one the test is
    skipped saying why, or fails where CRYODIFFSEG_REQUIRE_NAPARI=1."""
    python = os.environ.get(NAPARI_PYTHON_VAR, os.path.join(REPO, ".venv-napari", "bin", "python"))
    if not shutil.which("xvfb-run"):
        missing = "xvfb-run is not installed (Debian: apt-get install xvfb xauth)"
    elif not shutil.which(python):
        missing = f"no napari Python at {python} (scripts/test creates .venv-napari; or set {NAPARI_PYTHON_VAR})"
    else:
        found = subprocess.run([python, "-c", "import napari, mrcfile"], capture_output=True, text=True, timeout=300)
        missing = found.returncode and f"{python} cannot import napari and mrcfile: {found.stderr.strip()[-300:]}"
    if not missing:
        return f"xvfb-run -a {python}"
    if os.environ.get(REQUIRE_NAPARI_VAR) == "1":
        raise AssertionError(f"{REQUIRE_NAPARI_VAR}=1 but {missing}")
    print(f"\nskipping a real-napari test: {missing}")
    raise unittest.SkipTest(missing)


def setupProject(cls):
    """setupTestProject, and delete the project when the class is done (also after a failed setUpClass):
    tests leave nothing in the user's projects unless CRYODIFFSEG_TEST_KEEP is set."""
    previous = os.getcwd()  # setupTestProject moves into the project folder
    setupTestProject(cls, writeLocalConfig=True)

    def deleteProject():
        os.chdir(previous)
        if not os.environ.get(KEEP_VAR):
            Manager().deleteProject(cls.projName)

    cls.addClassCleanup(deleteProject)


def engineEnvironment():
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def runEngine(*args, timeout=600):
    """Run the engine command directly (test set-up only); its output on failure."""
    result = subprocess.run([ENGINE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            env=engineEnvironment())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def buildTinyBackbone(folder):
    """A tiny random-weight Stable Diffusion folder, built by the engine's Python (it needs torch) with the
    engine's test helper tests/tiny_models.py (present in a source checkout)."""
    tests = os.path.join(REPO, "tests")
    assert os.path.exists(os.path.join(tests, "tiny_models.py")), \
        f"{tests}/tiny_models.py is missing: run these tests from a source checkout of cryodiffseg"
    python = os.environ.get("CRYODIFFSEG_ENGINE_PYTHON", os.path.join(os.path.dirname(ENGINE), "python"))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from tiny_models import build_tiny_stable_diffusion; "
              "build_tiny_stable_diffusion(sys.argv[2])")
    result = subprocess.run([python, "-c", script, tests, folder], capture_output=True,
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
    """Launch a protocol and wait; a protocol still running after `seconds` is stopped and the test fails, as
    does one that ends without finishing.

    `test` is a test case or its class (from setUpClass): both carry failureException."""
    launchUntilEnded(test, protocol, seconds)
    if not protocol.isFinished():
        test.printLastLogLines(protocol)
        raise test.failureException(f"{protocol.getRunName()} ended {protocol.getStatus()}: "
                                    f"{protocol.getErrorMessage()}")
    return protocol


def launchUntilEnded(test, protocol, seconds=600):
    """Launch a protocol and wait until it ends, however it ends; one still running after `seconds` is
    stopped and the test fails."""
    test.proj.launchProtocol(protocol, wait=False)
    deadline = time.monotonic() + seconds
    while True:
        test.proj._updateProtocol(protocol)  # reloads its status and outputs from its run database
        if not protocol.isActive():
            break
        if time.monotonic() > deadline:
            test.proj.stopProtocol(protocol)
            test.printLastLogLines(protocol)
            raise test.failureException(f"{protocol.getRunName()} still ran after {seconds} s: stopped.")
        time.sleep(2)
    return protocol


def stepIntervals(protocol, functionName):
    """(start, end) datetimes of the steps that ran functionName."""
    return [(step.initTime.datetime(), step.endTime.datetime())
            for step in protocol.loadSteps() if step.funcName.get() == functionName]


def readVolume(path):
    """(voxels, voxel size in A) of an MRC file."""
    with mrcfile.open(path) as mrc:
        return mrc.data.copy(), float(mrc.voxel_size.x)


def volumesByTsId(masks):
    return {mask.getTsId(): readVolume(mask.getFileName()) for mask in masks}


def pointsByTsId(coordinates):
    """{tsId: sorted (x, y, z, score) rows} of a coordinate set, in the bottom-left convention."""
    from tomo.constants import BOTTOM_LEFT_CORNER

    points = {}
    for coordinate in coordinates.iterCoordinates():
        points.setdefault(coordinate.getTomoId(), []).append(
            (*coordinate.getPosition(BOTTOM_LEFT_CORNER), coordinate.getScore() or 0.0))
    return {tsId: np.array(sorted(rows)) for tsId, rows in points.items()}

