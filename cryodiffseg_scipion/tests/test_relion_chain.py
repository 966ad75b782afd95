"""Picks proven the way a facility proves them: Scipion coordinates -> tomo's export -> RELION 3 extraction and
averaging -> half-set FSC, against random positions; and every position kept to the voxel on the way.

pseudo-labels (default: image evidence) -> train the picker -> pick, on a generated tomogram with ribosome-like
particles; then tomo's "export 3D coordinates" (txt, BOTTOM_LEFT_CORNER) -> `relion_preprocess --extract` ->
`relion_reconstruct` of both halves -> `relion_image_handler --fsc`. Needs Debian's relion (3.1.3, CPU).
"""

import csv
import os
import shutil
import subprocess
import unittest

import mrcfile
import numpy as np
from pyworkflow.object import Pointer
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.protocols import ProtExportCoordinates3D, ProtImportTomograms
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from cryodiffseg_scipion.constants import COORDINATES, MODEL, PARTICLES_SUFFIX
from cryodiffseg_scipion.convert import findOutput
from cryodiffseg_scipion.protocols import ProtCryoDiffSegPick, ProtCryoDiffSegPseudoLabels, ProtCryoDiffSegTrain

from .support import launchWithDeadline, requiresEngine, runEngine, setupProject

SAMPLING = 10.0
SHAPE_ZYX = (96, 256, 256)
TS_ID = "TS_01"
BOX = 40  # voxels: 1.6 ribosome diameters at 10 A
RADIUS = 12.5  # half a ribosome, voxels
LOW_SHELLS = range(1, 8)

# Skipped where RELION is missing, except where it is required (CI installs it).
requiresRelion = unittest.skipUnless(shutil.which("relion_preprocess") or os.environ.get("CRYODIFFSEG_REQUIRE_RELION"),
                                     "RELION 3 is not installed (apt-get install -y --no-install-recommends relion)")

OPTICS_AND_TOMOGRAM = """
data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
opticsGroup1 1 {sampling:.6f} 300.0 2.7 0.07

data_micrographs

loop_
_rlnMicrographName #1
_rlnOpticsGroup #2
Tomograms/{name}/{name}.mrc 1
"""


def relionAverage(folder, tomogram, positions_xyz):
    """RELION 3 extraction of ``positions`` (whole voxels, x y z) and averaging: (average, half-set FSC per
    shell, the particle STAR rows' x y z)."""
    os.makedirs(os.path.join(folder, "Tomograms", "tomo"))
    os.symlink(os.path.abspath(tomogram), os.path.join(folder, "Tomograms", "tomo", "tomo.mrc"))
    with open(os.path.join(folder, "Tomograms", "tomo", "tomo.txt"), "w") as handle:
        handle.writelines(f"{x} {y} {z}\n" for x, y, z in positions_xyz)
    with open(os.path.join(folder, "tomograms.star"), "w") as handle:
        handle.write(OPTICS_AND_TOMOGRAM.format(sampling=SAMPLING, name="tomo"))

    def run(*args):
        result = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    run("relion_preprocess", "--i", "tomograms.star", "--coord_dir", "./", "--coord_suffix", ".txt",
        "--part_star", "particles.star", "--part_dir", "Particles/", "--extract", "--extract_size", str(BOX),
        "--invert_contrast", "--norm", "--bg_radius", str(BOX // 2 - 5))
    header, rows = readStarLoop(os.path.join(folder, "particles.star"), "data_particles")
    with open(os.path.join(folder, "halves.star"), "w") as handle:  # alternate picks into the two half-sets
        handle.write(starPrologue(os.path.join(folder, "particles.star")))
        handle.write("data_particles\n\nloop_\n" + "".join(f"{name} #{i + 1}\n" for i, name in enumerate(header)))
        handle.write(f"_rlnRandomSubset #{len(header) + 1}\n")
        handle.writelines(" ".join(row) + f" {1 + i % 2}\n" for i, row in enumerate(rows))
    for output, subset in (("average.mrc", None), ("half1.mrc", "1"), ("half2.mrc", "2")):
        run("relion_reconstruct", "--i", "halves.star", "--o", output, "--3d_rot", *(["--subset", subset] if subset else []))
    fsc_header, fsc_rows = readStarLoop(None, "data_fsc", run("relion_image_handler", "--i", "half1.mrc", "--fsc", "half2.mrc"))
    fsc = np.array([float(row[fsc_header.index("_rlnFourierShellCorrelation")]) for row in fsc_rows])
    columns = [header.index(f"_rlnCoordinate{axis}") for axis in "XYZ"]
    coordinates = np.array([[float(row[c]) for c in columns] for row in rows])
    return mrcfile.read(os.path.join(folder, "average.mrc")), fsc, coordinates


def starPrologue(path):
    """Everything of a STAR file before its particles block (the optics group RELION wrote)."""
    with open(path) as handle:
        return handle.read().split("data_particles")[0]


def readStarLoop(path, block, text=None):
    """(column names, rows of words) of the loop of one data block."""
    text = text if text is not None else open(path).read()
    lines = text.split(block, 1)[1].splitlines()
    header, rows = [], []
    for line in lines:
        words = line.split()
        if not words or words[0] == "loop_":
            if rows:
                break
            continue
        if words[0].startswith("data_"):
            break
        if words[0].startswith("_rln"):
            header.append(words[0])
        else:
            rows.append(words)
    return header, rows


def centreContrast(average):
    """(mean inside half a particle radius - mean beyond the radius) / std beyond: RELION inverts contrast,
    so particles are bright."""
    grid = np.indices(average.shape) - np.array(average.shape)[:, None, None, None] // 2
    distance = np.sqrt((grid**2).sum(axis=0))
    outside, centre = average[distance > RADIUS], average[distance < RADIUS / 2]
    return float((centre.mean() - outside.mean()) / outside.std())


@requiresEngine
@requiresRelion
class TestRelionChain(TestBaseCentralizedLayer):
    """One project: generated tomogram -> CryoDiffSeg pseudo-labels, picker, picks -> export -> RELION."""

    @classmethod
    def setUpClass(cls):
        setupProject(cls)
        data = cls.getOutputPath("data")
        runEngine("synth", "--out", data, "--shape", *map(str, SHAPE_ZYX), "--seed", "11", "--snr", "0.3")
        os.makedirs(cls.getOutputPath("tomograms"))
        cls.tomogramFile = os.path.join(cls.getOutputPath("tomograms"), f"{TS_ID}.mrc")
        shutil.copy(os.path.join(data, "tomogram.mrc"), cls.tomogramFile)
        with open(os.path.join(data, "particles.csv"), newline="") as handle:
            cls.truth = np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in csv.DictReader(handle)])
        protocol = cls.newProtocol(ProtImportTomograms, filesPath=cls.getOutputPath("tomograms"), filesPattern="TS_*.mrc",
                                   samplingRate=SAMPLING)
        cls.tomograms = launchWithDeadline(cls, protocol, 300).Tomograms

    def test_picks_average_to_a_particle_in_relion_and_keep_their_voxels(self):
        labels = self.newProtocol(ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms, slabs=f"{TS_ID}: 46-49",
                                  numberOfThreads=1, gpuList="")
        labels = launchWithDeadline(self, labels, 900)
        train = self.newProtocol(ProtCryoDiffSegTrain, targets=2, pickerIterations=300, numberOfThreads=2, gpuList="")
        train.pseudoLabels.append(Pointer(labels))
        model = getattr(launchWithDeadline(self, train, 1200), MODEL)
        pick = self.newProtocol(ProtCryoDiffSegPick, inTomograms=self.tomograms, model=model, numberOfThreads=2, gpuList="")
        pick = launchWithDeadline(self, pick, 900)
        coordinates = getattr(pick, COORDINATES)

        # The set carries what extraction protocols read: precedents, tsId, sampling, box, position, matrix, score.
        self.assertEqual(coordinates.getPrecedents().getSize(), 1)
        self.assertAlmostEqual(coordinates.getSamplingRate(), SAMPLING)
        self.assertEqual(coordinates.getBoxSize(), 26)  # the 25 nm particle in 10 A voxels, even
        engine = findOutput(pick.getFolder(TS_ID), PARTICLES_SUFFIX)
        with open(engine, newline="") as handle:
            picked = np.array([[float(r["x"]), float(r["y"]), float(r["z"]), float(r["score"])] for r in csv.DictReader(handle)])
        scipion = []
        for coordinate in coordinates.iterCoordinates():
            self.assertEqual(coordinate.getTomoId(), TS_ID)
            np.testing.assert_array_equal(coordinate.getMatrix(), np.eye(4))
            scipion.append([*coordinate.getPosition(BOTTOM_LEFT_CORNER), coordinate.getScore()])
        scipion = np.array(scipion)
        np.testing.assert_allclose(np.sort(scipion, axis=0), np.sort(picked, axis=0), atol=1e-3)

        # The picks are the particles (generated truth), not a lucky average.
        distance = np.linalg.norm(picked[:, None, :3] - self.truth[None], axis=2)
        self.assertGreaterEqual(np.mean(distance.min(axis=1) <= RADIUS), 0.8, "too many picks are no particle")

        export = self.newProtocol(ProtExportCoordinates3D, inputCoordinates=coordinates)
        export = launchWithDeadline(self, export, 300)
        with open(os.path.join(export._getExportPath(), f"{TS_ID}.txt")) as handle:
            exported = np.array([[int(v) for v in line.split()] for line in handle if line.strip()])
        np.testing.assert_array_equal(np.sort(exported, axis=0), np.sort(np.floor(picked[:, :3]).astype(int), axis=0))

        average, fsc, starred = relionAverage(self.getOutputPath("relion_picks"), self.tomogramFile, exported)
        np.testing.assert_array_equal(np.sort(starred, axis=0), np.sort(exported, axis=0))  # RELION's STAR: same voxels
        rng = np.random.default_rng(0)
        random = np.column_stack([rng.integers(BOX // 2, n - BOX // 2, len(exported)) for n in SHAPE_ZYX[::-1]])
        randomAverage, randomFsc, _ = relionAverage(self.getOutputPath("relion_random"), self.tomogramFile, random)

        picksFsc, noiseFsc = fsc[list(LOW_SHELLS)].mean(), randomFsc[list(LOW_SHELLS)].mean()
        self.assertGreater(centreContrast(average), centreContrast(randomAverage) + 0.5)
        self.assertGreater(centreContrast(average), 0.5)
        self.assertGreater(picksFsc, noiseFsc + 0.2, f"half-set FSC over shells 1-7: picks {picksFsc:.2f}, random {noiseFsc:.2f}")
