"""Training the membrane U-Net and the particle picker on pseudo-labels."""

import os

from pyworkflow.protocol import GE, GT, LEVEL_ADVANCED, EnumParam, FloatParam, IntParam, MultiPointerParam, Range

from ..constants import MODEL, MODEL_TARGETS
from ..convert import readManifest, readModelRecords
from ..objects import CryoDiffSegModel
from .protocol_base import ProtCryoDiffSegBase

TARGET_CHOICES = ["membranes and particles", "membranes", "particles"]
TRAIN_OPTIONS = (
    ("iterations", "--iterations"),
    ("batchSize", "--batch-size"),
    ("cropSize", "--crop-size"),
    ("learningRate", "--learning-rate"),
    ("validationFraction", "--validation-fraction"),
    ("maxRotation", "--max-rotation"),
    ("pickerIterations", "--picker-iterations"),
    ("pickerBatchSize", "--picker-batch-size"),
    ("particleDiameterNm", "--particle-diameter-nm"),
    ("seed", "--seed"),
)


class ProtCryoDiffSegTrain(ProtCryoDiffSegBase):
    """Trains a membrane segmentation U-Net and a particle picker on CryoDiffSeg pseudo-labels.

    The model then segments and picks every tomogram of the data set (protocols 'segment membranes' and
    'pick particles'). A continued run resumes the training where it stopped.
    """

    _label = "train"
    _possibleOutputs = {MODEL: CryoDiffSegModel}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("pseudoLabels", MultiPointerParam, pointerClass="ProtCryoDiffSegPseudoLabels", important=True,
                      label="Pseudo-label runs", help="One or more runs of the CryoDiffSeg 'pseudo-labels' protocol.")
        form.addParam("targets", EnumParam, choices=TARGET_CHOICES, default=0, label="Train",
                      help="Membranes: a 2D U-Net on the pseudo-masks. Particles: a 3D picker on the pseudo-points.")
        form.addParam("seed", IntParam, default=0, expertLevel=LEVEL_ADVANCED, label="Random seed",
                      help="Seed of the data split, crops, augmentation and initial weights.")

        form.addSection(label="Membrane U-Net")
        form.addParam("iterations", IntParam, default=300, validators=[GE(1)], condition="targets != 2",
                      label="Iterations", help="Optimiser steps. The paper trains 30000 on a GPU; the default "
                                               "finishes in minutes on a CPU.")
        form.addParam("batchSize", IntParam, default=8, validators=[GE(1)], condition="targets != 2",
                      expertLevel=LEVEL_ADVANCED, label="Crops per step", help="Batch size.")
        form.addParam("cropSize", IntParam, default=96, validators=[GE(16)], condition="targets != 2",
                      expertLevel=LEVEL_ADVANCED, label="Crop size (px)", help="Side of the training crops; a "
                                                                                "multiple of 16.")
        form.addParam("learningRate", FloatParam, default=0.01, validators=[GT(0)], condition="targets != 2",
                      expertLevel=LEVEL_ADVANCED, label="Learning rate", help="SGD learning rate (momentum 0.9).")
        form.addParam("validationFraction", FloatParam, default=0.2, validators=[Range(0, 0.9)],
                      condition="targets != 2", expertLevel=LEVEL_ADVANCED, label="Validation fraction",
                      help="Share of the labelled slices held out; the weights with the lowest validation loss "
                           "are kept.")
        form.addParam("maxRotation", FloatParam, default=20.0, validators=[Range(0, 180)], condition="targets != 2",
                      expertLevel=LEVEL_ADVANCED, label="Random rotation (degrees)",
                      help="Augmentation: rotations within +-this (0 switches them off); flips always apply.")

        form.addSection(label="Particle picker")
        form.addParam("particleDiameterNm", FloatParam, default=25.0, validators=[GT(0)], condition="targets != 1",
                      label="Particle diameter (nm)",
                      help="Expected diameter of the macromolecules (25 nm: a ribosome). It sets the picker's "
                           "targets and the box size of the picked coordinates.")
        form.addParam("pickerIterations", IntParam, default=400, validators=[GE(1)], condition="targets != 1",
                      label="Iterations", help="Optimiser steps of the picker.")
        form.addParam("pickerBatchSize", IntParam, default=8, validators=[GE(1)], condition="targets != 1",
                      expertLevel=LEVEL_ADVANCED, label="Patches per step", help="Batch size of the picker.")
        self._addExtraArgsParam(form)
        self._addComputeParams(form, perTomogram=False)

    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def trainStep(self):
        folders = self._pseudoLabelFolders()
        # --resume: a continued run resumes the training where it stopped (the protocol's help says so)
        args = ["train", *folders, "--out", self.getModelFolder(), "--targets", ",".join(self._targets()), "--resume"]
        args += self._engineOptions(TRAIN_OPTIONS)
        # The engine reopens each pseudo-labelled tomogram from the path its pseudolabels.json records.
        tomograms = [readManifest(folder)["tomogram"] for folder in folders]
        self._runEngine(args, folders + tomograms, self.getModelFolder())

    def createOutputStep(self):
        folder = self._getExtraPath("model")
        records = readModelRecords(folder)
        model = CryoDiffSegModel(path=folder)
        model.setTargets([target for target in MODEL_TARGETS if target in records])
        first = next(iter(records.values()))
        model.setVoxelSize(first["voxel_size_A"])
        if "particles" in records:
            picker = records["particles"]
            model.setParticleDiameter(picker["particle_diameter_nm"] * 10)
        model.setEngineVersion(first.get("cryodiffseg_version"))
        self._defineOutputs(**{MODEL: model})
        for pointer in self.pseudoLabels:
            self._defineSourceRelation(pointer, model)

    # ------------------------------------------------------------------ helpers
    def getModelFolder(self):
        return os.path.abspath(self._getExtraPath("model"))

    def _targets(self):
        return [target for target in MODEL_TARGETS if target in self.getEnumText("targets")]

    def _pseudoLabelFolders(self):
        return [run.get().getFolder(tsId) for run in self.pseudoLabels for tsId in run.get().getLabelledTsIds()]

    # ------------------------------------------------------------------ info
    def _validate(self):
        runs = [pointer.get() for pointer in self.pseudoLabels]
        unfinished = [run.getRunName() for run in runs if not run.getLabelledTsIds()]
        if unfinished:
            return [f"These pseudo-label runs have no pseudo-labels yet: {', '.join(unfinished)}."]
        return self._rangeErrors(TRAIN_OPTIONS, "train")

    def _summary(self):
        model = getattr(self, MODEL, None)
        return [] if model is None else [f"Trained {' and '.join(model.getTargets())} on "
                                         f"{len(self._pseudoLabelFolders())} pseudo-labelled tomograms."]

    def _methods(self):
        model = getattr(self, MODEL, None)
        if model is None:
            return []
        methods = []
        if model.hasTarget("membranes"):
            methods.append(f"A 2D U-Net [Ronneberger2015] was trained for {self.iterations.get()} iterations on the "
                           f"membrane pseudo-masks of CryoDiffSeg [Gandhi2025].")
        if model.hasTarget("particles"):
            methods.append(f"A particle picker was trained for {self.pickerIterations.get()} iterations on the "
                           f"CryoDiffSeg pseudo-points.")
        return methods

    def _citations(self):
        return ["Gandhi2025", "Ronneberger2015"]
