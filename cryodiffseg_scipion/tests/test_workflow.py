"""End to end in a headless Scipion project: import -> pseudo-labels -> train -> segment -> pick -> extraction.

Runs the real engine (CRYODIFFSEG_ENGINE, runtime 'local') with a tiny random-weight backbone on small
generated tomograms: it checks the plumbing and the Scipion objects, never segmentation quality.
"""

import json
import os
import subprocess
from contextlib import contextmanager

import mrcfile
import numpy as np
from pyworkflow.object import Pointer
from pyworkflow.protocol.constants import MODE_RESUME
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import SetOfMeshes
from tomo.protocols import ProtImportTomograms, ProtTomoExtractCoords
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from cryodiffseg_scipion import Plugin
from cryodiffseg_scipion.constants import (
    COORDINATES,
    FAILED_TOMOGRAMS,
    MEMBRANE_MASKS,
    MEMBRANE_MESHES,
    MEMBRANE_PROBABILITIES,
    MODEL,
    NAPARI_VAR,
    PSEUDO_MASKS,
    PSEUDO_POINTS,
)
from cryodiffseg_scipion.protocols import (
    ProtCryoDiffSegPick,
    ProtCryoDiffSegPseudoLabels,
    ProtCryoDiffSegSegment,
    ProtCryoDiffSegTrain,
)
from cryodiffseg_scipion.convert import readPieces
from cryodiffseg_scipion.viewers.viewer_cryodiffseg import CryoDiffSegViewer, itemOf, napariCommand
from cryodiffseg_scipion.wizards import tomogramDepths

from .support import (
    buildTinyBackbone,
    launchUntilEnded,
    launchWithDeadline,
    realNapariOrSkip,
    requiresEngine,
    setupProject,
    stepIntervals,
    writeDataSets,
)

SAMPLING = 10.0  # Angstrom per voxel
SHAPE_ZYX = (16, 64, 64)
DIMENSIONS_XYZ = [SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]]
TS_IDS = ("TS_01", "TS_02")
SLABS = "TS_01: 5-7; TS_02: 8:10"
LABELLED = {"TS_01": [5, 6, 7], "TS_02": [8, 9]}
BROKEN = "TS_03"  # a truncated file: Scipion imports its header, the engine cannot read it

@contextmanager
def patchedVariable(name, value):
    previous = Plugin.getVar(name)
    Plugin._vars[name] = value
    try:
        yield
    finally:
        Plugin._vars[name] = previous


@requiresEngine
class TestCryoDiffSegWorkflow(TestBaseCentralizedLayer):
    """One project; each test uses what the previous ones produced (unittest runs them in name order)."""

    @classmethod
    def setUpClass(cls):
        setupProject(cls)
        representative, dataset = cls.getOutputPath("representative"), cls.getOutputPath("dataset")
        writeDataSets(representative, dataset, TS_IDS, BROKEN, SHAPE_ZYX, SAMPLING)
        cls.backbone = buildTinyBackbone(cls.getOutputPath("tiny_backbone"))
        cls.tomograms = cls.importTomograms(representative)
        cls.dataset = cls.importTomograms(dataset)

    @classmethod
    def importTomograms(cls, folder):
        protocol = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="TS_*.mrc",
                                   samplingRate=SAMPLING)
        return launchWithDeadline(cls, protocol, 300).Tomograms

    def test_00_the_slabs_wizard_reads_the_input_tomograms(self):
        self.assertEqual(tomogramDepths(self.tomograms), {tsId: SHAPE_ZYX[0] for tsId in TS_IDS})

    def test_01_pseudolabels(self):
        # The attention canvas's points, its filters relaxed so that random backbone weights still give
        # pseudo-points on 64 x 64 slices (particle-sized blobs do not fit in 16 slices).
        protocol = self.newProtocol(ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms, slabs=SLABS, particles=1,
                                    backbone=self.backbone, numSamples=1, circularity=0.5, minAreaNm=5.0,
                                    membraneDistance=0.0, crowdingDistance=4.0, dedupNm=1.0,
                                    numberOfThreads=3, binThreads=1, gpuList="")
        protocol = launchWithDeadline(self, protocol, 900)
        type(self).pseudoLabels = protocol

        masks = getattr(protocol, PSEUDO_MASKS)
        self.checkTomoMasks(masks, expectedSetSize=2, expectedSRate=SAMPLING, expectedDimensions=DIMENSIONS_XYZ)
        self.assertLinkedToTomograms(masks, self.tomograms)
        for mask in masks:
            with mrcfile.open(mask.getFileName()) as mrc:
                self.assertEqual(mrc.data.dtype, np.int8)
                labelled = [z for z in range(SHAPE_ZYX[0]) if mrc.data[z].any()]
            self.assertLessEqual(set(labelled), set(LABELLED[mask.getTsId()]))

        points = getattr(protocol, PSEUDO_POINTS)
        self.checkCoordinates(points, expectedBoxSize=32, expectedSRate=SAMPLING)
        self.assertEqual(sorted(points.getTSIds()), list(TS_IDS))
        self.assertInsideTomograms(points, self.tomograms)
        for coordinate in points.iterCoordinates():
            self.assertIn(round(coordinate.getPosition(BOTTOM_LEFT_CORNER)[2]), LABELLED[coordinate.getTomoId()])

        # 3 Scipion threads = the main one + 2 workers: both tomograms are pseudo-labelled at the same time
        (start1, end1), (start2, end2) = stepIntervals(protocol, "pseudoLabelStep")
        self.assertLess(max(start1, start2), min(end1, end2), "the two engine runs did not overlap")

    def test_02_continue_recomputes_nothing(self):
        protocol = self.pseudoLabels
        before = stepIntervals(protocol, "pseudoLabelStep")
        sizes = (getattr(protocol, PSEUDO_MASKS).getSize(), getattr(protocol, PSEUDO_POINTS).getSize())
        protocol.runMode.set(MODE_RESUME)
        protocol = launchWithDeadline(self, protocol, 300)
        self.assertEqual(stepIntervals(protocol, "pseudoLabelStep"), before)
        self.assertEqual((getattr(protocol, PSEUDO_MASKS).getSize(), getattr(protocol, PSEUDO_POINTS).getSize()), sizes)

    def test_03_viewers(self):
        protocol = self.pseudoLabels
        viewer = CryoDiffSegViewer(project=self.proj, protocol=protocol)
        viewer.setProtocol(protocol)
        self.assertEqual(viewer.getParam("tomogram").choices, list(TS_IDS))
        (plotter,) = viewer._showQc()
        self.assertEqual(len(plotter.getFigure().axes), 1)  # TS_01: one slab, one QC figure

        with patchedVariable(NAPARI_VAR, "/nowhere/bin/python"):
            (view,) = viewer._showNapari()
        failure = view.start()
        self.assertIn(f"set {NAPARI_VAR} to a command that runs a Python with napari", failure)

        # the overlay of this run in a real napari, which lists its layers (--check) instead of opening a window
        with patchedVariable(NAPARI_VAR, realNapariOrSkip()):
            command = napariCommand(protocol, "TS_01", self.proj.getTmpPath())
        result = subprocess.run(f"{command} --check", shell=True, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        layers = json.loads(result.stdout.strip().splitlines()[-1])["layers"]
        counts = getattr(protocol, PSEUDO_POINTS).aggregate(["COUNT"], "_tomoId", ["_tomoId"])
        points = {row["_tomoId"]: row["COUNT"] for row in counts}.get("TS_01", 0)
        self.assertEqual([(layer["type"], layer["name"], layer["shape"]) for layer in layers],
                         [("image", "TS_01", list(SHAPE_ZYX)), ("labels", "TS_01_membrane_pseudomask", list(SHAPE_ZYX))]
                         + ([("points", f"{protocol.getObjId()}_{PSEUDO_POINTS}_TS_01", [points, 3])] if points else []))

    def test_04_train(self):
        protocol = self.newProtocol(ProtCryoDiffSegTrain, iterations=4, pickerIterations=4, particleDiameterNm=8.0,
                                    numberOfThreads=2, gpuList="")
        protocol.pseudoLabels.append(Pointer(self.pseudoLabels))
        protocol = launchWithDeadline(self, protocol, 900)
        model = getattr(protocol, MODEL)
        type(self).model = model
        self.assertEqual(model.getTargets(), ["membranes", "particles"])
        self.assertAlmostEqual(model.getVoxelSize(), SAMPLING, places=3)
        self.assertAlmostEqual(model.getParticleDiameter(), 80.0, places=3)  # Angstrom
        self.assertTrue(os.path.isdir(model.getPath()))

    def test_05_segment(self):
        protocol = self.newProtocol(ProtCryoDiffSegSegment, inTomograms=self.dataset, model=self.model,
                                    numberOfThreads=3, binThreads=1, gpuList="")
        protocol = launchWithDeadline(self, protocol, 900)
        masks, probabilities = getattr(protocol, MEMBRANE_MASKS), getattr(protocol, MEMBRANE_PROBABILITIES)
        for output, dtype in ((masks, np.int8), (probabilities, np.float32)):
            self.checkTomoMasks(output, expectedSetSize=2, expectedSRate=SAMPLING, expectedDimensions=DIMENSIONS_XYZ)
            self.assertLinkedToTomograms(output, self.dataset)
            for item in output:
                with mrcfile.open(item.getFileName()) as mrc:
                    self.assertEqual(mrc.data.dtype, dtype)
        self.assertNotEqual(masks.getFileName(), probabilities.getFileName())
        self.assertEqual(list(getattr(protocol, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])
        self.assertMeshesArePiecesOfTheMasks(getattr(protocol, MEMBRANE_MESHES), masks, protocol)
        # the summary gives the engine's reason for the failed tomogram; the engine's log is in the output log
        summary = protocol.summary()
        self.assertIn("Failed:", summary)
        (reason,) = [line for line in summary if line.startswith(f"{BROKEN}: ")]
        self.assertRegex(reason, rf"^{BROKEN}: cryodiffseg segment: error: \S")
        with open(protocol.getStdoutLog()) as log:
            self.assertRegex(log.read(), r"INFO Read \S*TS_01\.mrc")

    def test_06_pick_and_extract(self):
        # a threshold near 0: nearly every local maximum of an untrained picker's heat map is a candidate
        protocol = self.newProtocol(ProtCryoDiffSegPick, inTomograms=self.dataset, model=self.model, threshold=0.001,
                                    maxPoints=40, numberOfThreads=3, binThreads=1, gpuList="")
        protocol = launchWithDeadline(self, protocol, 900)
        coordinates = getattr(protocol, COORDINATES)
        boxSize = 8  # the 8 nm particle diameter in 1 nm voxels
        self.checkCoordinates(coordinates, expectedBoxSize=boxSize, expectedSRate=SAMPLING)
        self.assertGreater(coordinates.getSize(), 0)
        self.assertLessEqual(set(coordinates.getTSIds()), set(TS_IDS))
        self.assertInsideTomograms(coordinates, self.dataset)
        self.assertTrue(all(0 <= coordinate.getScore() <= 1 for coordinate in coordinates.iterCoordinates()))
        self.assertEqual(list(getattr(protocol, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])

        # tomo's own coordinate tools accept the set: re-associate the coordinates with the tomograms
        extract = self.newProtocol(ProtTomoExtractCoords, inputSubTomos=coordinates, inputTomos=self.dataset)
        extracted = launchWithDeadline(self, extract, 300).coordinates3d
        self.checkCoordinates(extracted, expectedSetSize=coordinates.getSize(), expectedBoxSize=boxSize,
                              expectedSRate=SAMPLING)
        self.compareCoordinates(coordinates, extracted)

    def test_07_a_failed_run_shows_the_engines_reason(self):
        # the attention canvas from a backbone the hub would have to provide, offline: the engine refuses it
        protocol = self.newProtocol(ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms, slabs=SLABS,
                                    membranes=1, backbone="nobody/no-such-model", numberOfThreads=3, binThreads=1,
                                    gpuList="")
        protocol = launchUntilEnded(self, protocol, 600)
        self.assertTrue(protocol.isFailed())
        reason = "cryodiffseg pseudolabel: error: Cannot load the backbone 'nobody/no-such-model'"
        self.assertTrue(protocol.getErrorMessage().startswith(f"Protocol failed: {reason}"),
                        protocol.getErrorMessage())
        summary = protocol.summary()
        error = summary[summary.index("*ERROR:*") + 1]
        self.assertTrue(error.startswith(f"Protocol failed: {reason}"), error)
        self.assertNotIn("\x1b", "".join(summary))  # no terminal colour codes
        self.assertNotIn("--error-file", "".join(summary))  # nor the command line
        with open(protocol.getStdoutLog()) as log:  # the engine's progress, where users look
            self.assertIn("Pseudo-labelling 3 slices", log.read())

    # ------------------------------------------------------------------ checks
    def assertMeshesArePiecesOfTheMasks(self, meshes, masks, protocol):
        """One group of mesh points per connected piece of each mask, on that piece (the piece of the mask voxel
        nearest to most of its points), linked to its tomogram, as the engine's pieces file lists them."""
        from collections import Counter

        from scipy import ndimage

        self.assertIsInstance(meshes, SetOfMeshes)
        self.assertEqual(meshes.getBoxSize(), 4)  # the point spacing
        self.assertAlmostEqual(meshes.getSamplingRate(), SAMPLING)
        self.assertInsideTomograms(meshes, self.dataset)
        total = 0
        for mask in masks:
            tsId = mask.getTsId()
            with mrcfile.open(mask.getFileName()) as mrc:
                labels, count = ndimage.label(mrc.data > 0)
            total += count
            distance, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
            pieces = {}
            points = [(point.getGroupId(), point.getPosition(BOTTOM_LEFT_CORNER))  # the set reuses one object
                      for point in meshes.iterCoordinates(volume=itemOf(self.dataset, tsId))]
            for group, position in points:
                x, y, z = (round(value) for value in position)
                self.assertLessEqual(distance[z, y, x], 2, f"{tsId}: a mesh point off the mask")
                pieces.setdefault(group, Counter())[labels[tuple(nearest[:, z, y, x])]] += 1
            self.assertEqual(sorted(pieces), list(range(1, count + 1)), tsId)  # a group per piece
            self.assertEqual(sorted(counts.most_common(1)[0][0] for counts in pieces.values()),
                             list(range(1, count + 1)), tsId)  # each on its own piece
            pieceFile = os.path.join(protocol.getFolder(tsId), f"{tsId}_membrane_pieces.csv")
            self.assertEqual(len(readPieces(pieceFile)), len(points))
        self.assertGreater(total, 0)
        self.assertEqual(meshes.getNumberOfMeshes(), total)

    def assertLinkedToTomograms(self, masks, tomograms):
        files = {tomo.getTsId(): tomo.getFileName() for tomo in tomograms}
        for mask in masks:
            self.assertEqual(mask.getVolName(), files[mask.getTsId()])

    def assertInsideTomograms(self, coordinates, tomograms):
        sizes = {tomo.getTsId(): tomo.getDim() for tomo in tomograms}
        for coordinate in coordinates.iterCoordinates():
            position = coordinate.getPosition(BOTTOM_LEFT_CORNER)
            for value, size in zip(position, sizes[coordinate.getTomoId()], strict=True):
                self.assertTrue(0 <= value < size, f"{coordinate} lies outside its tomogram {size}")
