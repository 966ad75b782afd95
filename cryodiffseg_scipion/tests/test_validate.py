"""What the protocols refuse before a run starts, each error saying what is missing (no engine needed)."""

import glob
import os
import stat
from unittest import mock

from pyworkflow.object import Pointer
from pyworkflow.tests import BaseTest
from tomo.protocols import ProtImportTomograms

from cryodiffseg_scipion import Plugin
from cryodiffseg_scipion.constants import ENGINE_VAR, RUNTIME_VAR
from cryodiffseg_scipion.objects import CryoDiffSegModel
from cryodiffseg_scipion.protocols import (
    ProtCryoDiffSegPick,
    ProtCryoDiffSegPseudoLabels,
    ProtCryoDiffSegSegment,
    ProtCryoDiffSegTrain,
)

from .support import launchWithDeadline, setupProject, writeTomogram


class TestValidation(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupProject(cls)
        folder = cls.getOutputPath("generated")
        os.makedirs(folder)
        for tsId in ("TS_01", "TS_02"):
            writeTomogram(os.path.join(folder, f"{tsId}.mrc"), (12, 32, 32), 10.0)
        imported = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="TS_*.mrc", samplingRate=10.0)
        cls.tomograms = launchWithDeadline(cls, imported, 300).Tomograms
        cls.engine = os.path.join(folder, "cryodiffseg")  # an executable stand-in: validation never runs it
        with open(cls.engine, "w") as handle:
            handle.write("#!/bin/sh\nexit 0\n")
        os.chmod(cls.engine, os.stat(cls.engine).st_mode | stat.S_IXUSR)

    def setUp(self):
        """Each test sees an installed local engine; the plugin's variables are restored afterwards."""
        patcher = mock.patch.dict(Plugin._vars, {ENGINE_VAR: self.engine, RUNTIME_VAR: "local"})
        patcher.start()
        self.addCleanup(patcher.stop)

    def pseudoLabels(self, **params):
        return self.newProtocol(ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms,
                                **{"slabs": "TS_01: 2-4; TS_02: 5", **params})

    def test_valid_pseudolabels(self):
        self.assertEqual(self.pseudoLabels().validate(), [])

    def engineArguments(self, protocol):
        """The engine command line of the first tomogram's pseudo-label step, without running it."""
        captured = []
        protocol.tomograms = protocol._tomogramsByTsId(protocol.inTomograms.get())
        protocol.slabsByTsId = {"TS_01": "2-4", "TS_02": "5"}
        with mock.patch.object(protocol, "_runEngine", lambda args, inputs, out: captured.append(args)):
            protocol.pseudoLabelStep("TS_01")
        return captured[0]

    def test_the_paper_preset_is_passed_without_the_fields_it_sets(self):
        default = self.engineArguments(self.pseudoLabels())
        self.assertIn("--membranes", default)
        self.assertEqual(default[default.index("--backbone") + 1], Plugin.getBackbone())
        paper = self.engineArguments(self.pseudoLabels(preset=1))
        self.assertEqual(paper[paper.index("--preset") + 1], "paper")
        for flag in ("--membranes", "--particles", "--solver", "--tiling", "--splitter", "--dedup", "--dtype", "--backbone"):
            self.assertNotIn(flag, paper)
        given = self.engineArguments(self.pseudoLabels(preset=1, backbone="compact"))
        self.assertEqual(given[given.index("--backbone") + 1], "compact")

    def test_slab_errors(self):
        cases = {
            "TS_01 2-4": "is not 'TSID: RANGES'",
            "TS_01: 2-4; TS_03: 1": "not in the input: TS_03",
            "TS_01: 2-4": "missing: TS_02",
            "TS_01: 2-4; TS_02: 10-12": "reach slice 12 but it has 12 slices",
        }
        for slabs, message in cases.items():
            errors = self.pseudoLabels(slabs=slabs)._validate()
            self.assertTrue(any(message in error for error in errors), f"{slabs!r}: {errors}")

    def test_missing_weights(self):
        errors = self.pseudoLabels(backbone="/nowhere/backbone")._validate()
        self.assertIn("The diffusion backbone /nowhere/backbone does not exist.", errors)
        errors = self.pseudoLabels(splitter=1, cellposeModel="/nowhere/cyto3.pth")._validate()
        self.assertIn("The CellPose weights file /nowhere/cyto3.pth does not exist.", errors)
        self.assertEqual(self.pseudoLabels(splitter=2, cellposeModel="/nowhere/cyto3.pth")._validate(), [])

    def test_hub_backbone_needs_a_cache_offline(self):
        self.assertEqual(self.pseudoLabels(backbone="CompVis/stable-diffusion-v1-4")._validate(), [])
        self.assertIn("Hugging Face", self.pseudoLabels(backbone="CompVis/stable-diffusion-v1-4")._warnings()[0])
        # containers run without network, but the backbone may be baked into the image or in the weights folder
        with mock.patch.dict(Plugin._vars, {RUNTIME_VAR: "docker"}):
            protocol = self.pseudoLabels(backbone="CompVis/stable-diffusion-v1-4")
            self.assertEqual(protocol._weightErrors(), [])
            self.assertIn("must be baked into the image", protocol._warnings()[0])

    def test_gpus_and_threads_default_to_what_this_machine_has(self):
        protocol = self.pseudoLabels()
        self.assertEqual(protocol.binThreads.get(), len(os.sched_getaffinity(0)))
        self.assertEqual(protocol.getAttributeValue("gpuList"), "0" if glob.glob("/dev/nvidia[0-9]*") else "")
        self.assertEqual(self.newProtocol(ProtCryoDiffSegTrain).numberOfThreads.get(), len(os.sched_getaffinity(0)))

    def test_automatic_slabs_need_no_ranges(self):
        self.assertEqual(self.pseudoLabels(slabs="auto")._validate(), [])
        self.assertEqual(self.pseudoLabels(slabs="TS_01: auto; TS_02: 5")._validate(), [])

    def test_values_outside_the_engines_limits_are_refused_in_the_form(self):
        cases = {"diameter": (0.0, "Instance diameter (px): 0.0 is not allowed; the value must be > 0."),
                 "tileSize": (0, "the value must be > 0"), "tileOverlap": (-4, "the value must be >= 0"),
                 "maxTimestep": (-1, "the value must be >= 0"), "paperReuse": (1.5, "the value must be >= 0 and <= 1")}
        for name, (value, message) in cases.items():
            errors = self.pseudoLabels(**{name: value}, solver=1)._validate()
            self.assertTrue(any(message in error for error in errors), f"{name}={value}: {errors}")
        hidden = self.pseudoLabels(paperReuse=1.5)  # the direct solver: the field is not shown nor passed
        self.assertEqual(hidden._validate(), [])
        segment = self.newProtocol(ProtCryoDiffSegSegment, inTomograms=self.tomograms, minSize=-1)
        self.assertTrue(any("the value must be >= 0" in error for error in segment._validate()))
        train = self.newProtocol(ProtCryoDiffSegTrain, learningRate=0.0)
        self.assertTrue(any("the value must be > 0" in error for error in train._validate()), train._validate())

    def test_even_threshold_block(self):
        self.assertIn("Threshold block must be odd.", self.pseudoLabels(thresholdBlock=14)._validate())

    def test_missing_engine_blocks_every_protocol(self):
        with mock.patch.dict(Plugin._vars, {ENGINE_VAR: "/nowhere/bin/cryodiffseg"}):
            errors = self.pseudoLabels().validate()
            self.assertTrue(any("CRYODIFFSEG_ENGINE: '/nowhere/bin/cryodiffseg'" in error for error in errors), errors)
            self.assertFalse(ProtCryoDiffSegSegment.isInstalled())

    def test_model_without_the_needed_target(self):
        model = CryoDiffSegModel(path="/models/m")
        model.setTargets(["particles"])
        segment = self.newProtocol(ProtCryoDiffSegSegment, inTomograms=self.tomograms)
        segment.model.set(model)
        self.assertIn("The model has no membranes (trained: particles)", segment._validate()[0])
        pick = self.newProtocol(ProtCryoDiffSegPick, inTomograms=self.tomograms)
        pick.model.set(model)
        self.assertEqual(pick._validate(), [])

    def test_train_needs_finished_pseudolabels(self):
        pending = self.pseudoLabels()
        self.saveProtocol(pending)
        train = self.newProtocol(ProtCryoDiffSegTrain)
        train.pseudoLabels.append(Pointer(pending))
        errors = train._validate()
        self.assertIn("have no pseudo-labels yet", errors[0])
