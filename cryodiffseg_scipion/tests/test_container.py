"""The engine image run by the plugin gives what the local engine gives, from pseudo-labels to picking.

One project holds two chains of the same protocols with the same seeds, one run by the local engine
(CRYODIFFSEG_ENGINE) and one inside the engine image (CRYODIFFSEG_CONTAINER_IMAGE, run by
CRYODIFFSEG_CONTAINER_RUNTIME, podman by default); each stage compares their outputs. The image is built by
scripts/container-test, which runs this module; without CRYODIFFSEG_CONTAINER_IMAGE it is skipped.
"""

import os
import time
import unittest
from contextlib import contextmanager

import numpy as np
from pyworkflow.object import Pointer
from tomo.protocols import ProtImportTomograms
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from cryodiffseg_scipion.constants import (
    COORDINATES,
    FAILED_TOMOGRAMS,
    IMAGE_VAR,
    MEMBRANE_MASKS,
    MEMBRANE_PROBABILITIES,
    MODEL,
    PSEUDO_MASKS,
    PSEUDO_POINTS,
    RUNTIME_ARGS_VAR,
    RUNTIME_VAR,
)
from cryodiffseg_scipion.protocols import (
    ProtCryoDiffSegPick,
    ProtCryoDiffSegPseudoLabels,
    ProtCryoDiffSegSegment,
    ProtCryoDiffSegTrain,
)
from cryodiffseg_scipion.runtime import LOCAL

from .support import (buildTinyBackbone, launchWithDeadline, pointsByTsId, requiresEngine, setupProject, volumesByTsId,
                      writeDataSets)

IMAGE = os.environ.get("CRYODIFFSEG_CONTAINER_IMAGE")
CONTAINER = os.environ.get("CRYODIFFSEG_CONTAINER_RUNTIME", "podman")
RUNTIMES = (LOCAL, CONTAINER)

SAMPLING = 10.0  # Angstrom per voxel
SHAPE_ZYX = (16, 64, 64)
DIMENSIONS_XYZ = [SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]]
TS_IDS = ("TS_01", "TS_02")
BROKEN = "TS_03"  # a truncated file: the engine fails on it in both runtimes alike
SLABS = "TS_01: 5-7; TS_02: 8:10"


@contextmanager
def runtimeEnvironment(runtime):
    """Protocols started inside see the runtime (their subprocess reads the CRYODIFFSEG_* variables at start)."""
    settings = {RUNTIME_VAR: runtime}
    if runtime != LOCAL:
        # Small shared CI machines: no OpenMP spin-waiting in the container either (the host's setting stays out).
        settings.update({IMAGE_VAR: IMAGE, RUNTIME_ARGS_VAR: "--env OMP_WAIT_POLICY=PASSIVE"})
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


@requiresEngine
@unittest.skipUnless(IMAGE, "set CRYODIFFSEG_CONTAINER_IMAGE to a built engine image")
class TestContainerRuntime(TestBaseCentralizedLayer):
    """Each stage runs with both runtimes and compares; unittest runs the tests in name order."""

    @classmethod
    def setUpClass(cls):
        setupProject(cls)
        # Spaces in the folders, and link chains (project link -> dataset link -> file) that binds must resolve.
        representative, dataset = cls.getOutputPath("raw data"), cls.getOutputPath("data set")
        writeDataSets(representative, dataset, TS_IDS, BROKEN, SHAPE_ZYX, SAMPLING)
        cls.backbone = buildTinyBackbone(cls.getOutputPath("tiny backbone"))
        cls.tomograms, cls.dataset = cls.importTomograms(representative), cls.importTomograms(dataset)
        cls.runs = {runtime: {} for runtime in RUNTIMES}

    @classmethod
    def importTomograms(cls, folder):
        protocol = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="TS_*.mrc",
                                   samplingRate=SAMPLING)
        return launchWithDeadline(cls, protocol, 300).Tomograms

    def launchWithEachRuntime(self, stage, makeProtocol):
        """Run makeProtocol(runtime) with each runtime (wall times printed); the local and container protocols."""
        for runtime in RUNTIMES:
            protocol = makeProtocol(runtime)
            protocol.setObjLabel(f"{stage} ({runtime})")
            started = time.monotonic()
            with runtimeEnvironment(runtime):
                self.runs[runtime][stage] = launchWithDeadline(self, protocol, 1200)
            print(f"wall time: {stage:<13} {runtime:<7} {time.monotonic() - started:6.1f} s")
        container = self.runs[CONTAINER][stage]
        self.assertRanInTheContainer(container)
        return self.runs[LOCAL][stage], container

    def test_01_pseudolabels(self):
        # The attention canvas's points (the backbone runs in the container too), its filters relaxed so that
        # random backbone weights still give pseudo-points on 64 x 64 slices.
        local, container = self.launchWithEachRuntime("pseudo-labels", lambda runtime: self.newProtocol(
            ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms, slabs=SLABS, backbone=self.backbone, particles=1,
            numSamples=1, circularity=0.5, minAreaNm=5.0, membraneDistance=0.0, crowdingDistance=4.0, dedupNm=1.0,
            numberOfThreads=3, binThreads=1, gpuList=""))
        for protocol in (local, container):
            self.checkTomoMasks(getattr(protocol, PSEUDO_MASKS), expectedSetSize=2, expectedSRate=SAMPLING,
                                expectedDimensions=DIMENSIONS_XYZ)
            self.checkCoordinates(getattr(protocol, PSEUDO_POINTS), expectedBoxSize=32, expectedSRate=SAMPLING)
        self.assertSameVolumes(getattr(local, PSEUDO_MASKS), getattr(container, PSEUDO_MASKS))
        self.assertSamePoints(getattr(local, PSEUDO_POINTS), getattr(container, PSEUDO_POINTS))

    def test_02_train(self):
        def train(runtime):
            protocol = self.newProtocol(ProtCryoDiffSegTrain, iterations=4, pickerIterations=4,
                                        particleDiameterNm=8.0, numberOfThreads=2, gpuList="")
            protocol.pseudoLabels.append(Pointer(self.runs[runtime]["pseudo-labels"]))
            return protocol

        local, container = self.launchWithEachRuntime("train", train)
        localModel, containerModel = getattr(local, MODEL), getattr(container, MODEL)
        self.assertEqual(containerModel.getTargets(), localModel.getTargets())
        self.assertEqual(containerModel.getVoxelSize(), localModel.getVoxelSize())
        self.assertEqual(containerModel.getParticleDiameter(), localModel.getParticleDiameter())
        self.assertEqual(sorted(os.listdir(containerModel.getPath())), sorted(os.listdir(localModel.getPath())))

    def test_03_segment(self):
        local, container = self.launchWithEachRuntime("segment", lambda runtime: self.newProtocol(
            ProtCryoDiffSegSegment, inTomograms=self.dataset, model=getattr(self.runs[runtime]["train"], MODEL),
            numberOfThreads=3, binThreads=1, gpuList=""))
        for name in (MEMBRANE_MASKS, MEMBRANE_PROBABILITIES):
            self.checkTomoMasks(getattr(container, name), expectedSetSize=2, expectedSRate=SAMPLING,
                                expectedDimensions=DIMENSIONS_XYZ)
            self.assertSameVolumes(getattr(local, name), getattr(container, name))
        for protocol in (local, container):
            self.assertEqual(list(getattr(protocol, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])

    def test_04_pick(self):
        # a threshold near 0: nearly every local maximum of an untrained picker's heat map is a candidate
        local, container = self.launchWithEachRuntime("pick", lambda runtime: self.newProtocol(
            ProtCryoDiffSegPick, inTomograms=self.dataset, model=getattr(self.runs[runtime]["train"], MODEL),
            threshold=0.001, maxPoints=40, numberOfThreads=3, binThreads=1, gpuList=""))
        self.checkCoordinates(getattr(container, COORDINATES), expectedBoxSize=8, expectedSRate=SAMPLING)
        self.assertGreater(getattr(container, COORDINATES).getSize(), 0)
        self.assertSamePoints(getattr(local, COORDINATES), getattr(container, COORDINATES))
        self.assertEqual(list(getattr(container, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])

    # ------------------------------------------------------------------ checks
    def assertRanInTheContainer(self, protocol):
        """The logged command line is the container's, and the files it wrote belong to the calling user."""
        with open(protocol.getLogPaths()[0]) as handle:
            log = handle.read()
        self.assertIn(f"{CONTAINER} run --rm --network none", log)
        self.assertIn(IMAGE, log)
        for folder, _, files in os.walk(protocol._getExtraPath()):
            for name in files:
                self.assertEqual(os.stat(os.path.join(folder, name)).st_uid, os.getuid(), f"{folder}/{name}")

    def assertSameVolumes(self, localSet, containerSet):
        local, container = volumesByTsId(localSet), volumesByTsId(containerSet)
        self.assertEqual(sorted(container), sorted(local))
        for tsId, (volume, voxelSize) in local.items():
            other, otherVoxelSize = container[tsId]
            self.assertEqual((other.shape, other.dtype, otherVoxelSize), (volume.shape, volume.dtype, voxelSize))
            print(f"{tsId} {volume.dtype}: {np.mean(other != volume):.2%} of the voxels differ, "
                  f"by {np.max(np.abs(other.astype(float) - volume)):.2g} at most")
            if np.issubdtype(volume.dtype, np.floating):
                np.testing.assert_allclose(other, volume, atol=1e-4, err_msg=tsId)
            else:  # labels: at most one voxel in a thousand may differ
                self.assertLessEqual(np.mean(other != volume), 1e-3, tsId)

    def assertSamePoints(self, localSet, containerSet):
        local, container = pointsByTsId(localSet), pointsByTsId(containerSet)
        self.assertEqual(sorted(container), sorted(local))
        for tsId, points in local.items():
            self.assertEqual(container[tsId].shape, points.shape, tsId)
            print(f"{tsId}: {len(points)} points, positions and scores differ by "
                  f"{np.max(np.abs(container[tsId] - points), initial=0):.2g} at most")
            np.testing.assert_allclose(container[tsId], points, atol=1e-3, err_msg=tsId)
