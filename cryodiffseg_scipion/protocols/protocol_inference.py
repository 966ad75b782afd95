"""Segmenting and picking every tomogram of a data set with a trained CryoDiffSeg model."""

import math
import os

from pyworkflow.protocol import (
    GE,
    LEVEL_ADVANCED,
    BooleanParam,
    EnumParam,
    FloatParam,
    IntParam,
    PointerParam,
    Range,
)
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import MeshPoint, SetOfMeshes, SetOfTomograms

from ..constants import (
    COORDINATES,
    FAILED_TOMOGRAMS,
    MEMBRANE_MASK_SUFFIX,
    MEMBRANE_MASKS,
    MEMBRANE_MESHES,
    MEMBRANE_PIECES_SUFFIX,
    MEMBRANE_PROBABILITIES,
    MEMBRANE_PROBABILITY_SUFFIX,
    PARTICLES_SUFFIX,
)
from ..convert import findOutput, readPieces, readPoints
from .protocol_base import EngineFailed, ProtCryoDiffSegBase, engineReason

SEGMENT_OPTIONS = (("threshold", "--threshold"), ("minSize", "--min-size"), ("axes", "--axes"),
                   ("batchSize", "--batch-size"), ("tileSize", "--tile-size"), ("chunkSlices", "--chunk-slices"),
                   ("pieceSpacing", "--piece-spacing"))
PICK_OPTIONS = (("threshold", "--threshold"), ("minDistanceNm", "--min-distance-nm"), ("maxPoints", "--max-points"),
                ("batchSize", "--batch-size"), ("chunkSlices", "--chunk-slices"), ("heatmap", "--heatmap"),
                ("average", "--average"), ("averageBox", "--box"))


class ProtCryoDiffSegInference(ProtCryoDiffSegBase):
    """Runs one engine command per tomogram; a tomogram the engine rejects goes to the failed output."""

    stepsExecutionMode = STEPS_PARALLEL
    engineCommand = None  # the engine's sub-command
    modelTarget = None  # the model part the sub-command needs
    optionTable = ()  # (form parameter, engine option)
    engineFixedArgs = ()  # engine options the registration relies on

    def _addInputParams(self, form):
        form.addSection(label="Input")
        form.addParam("inTomograms", PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms", help="Any tomograms of the data set the model was trained for.")
        form.addParam("model", PointerParam, pointerClass="CryoDiffSegModel", important=True,
                      label="Trained model", help="Output of the CryoDiffSeg 'train' protocol.")

    def _insertAllSteps(self):
        self.tomograms = self._tomogramsByTsId(self.inTomograms.get())
        registered = []
        for tsId in self.tomograms:
            ran = self._insertFunctionStep(self.engineStep, tsId, prerequisites=[], needsGPU=True)
            registered.append(self._insertFunctionStep(self.registerStep, tsId, prerequisites=[ran], needsGPU=False))
        self._insertFunctionStep(self.closeStep, prerequisites=registered, needsGPU=False)

    def engineStep(self, tsId):
        tomogram = os.path.abspath(self.tomograms[tsId].getFileName())
        modelDir = os.path.abspath(self.model.get().getPath())
        args = [self.engineCommand, tomogram, "--model", modelDir, "--out", self.getFolder(tsId),
                "--voxel-size", str(self.tomograms[tsId].getSamplingRate()), *self.engineFixedArgs,
                *self._engineOptions(self.optionTable)]
        try:
            self._runEngine(args, [tomogram, modelDir], self.getFolder(tsId))
        except EngineFailed as error:
            self.warning(f"{tsId}: {error} The tomogram goes to the failed output.")

    def registerStep(self, tsId):
        try:
            self._register(self.tomograms[tsId], self.getFolder(tsId))
        except FileNotFoundError:
            self._appendFailed(self.tomograms[tsId])

    def closeStep(self):
        self._closeOutputSet()
        if len(self._failedTsIds()) == len(self.tomograms):
            raise RuntimeError("The engine failed on every tomogram. " + " ".join(self._failureReasons()))

    def _appendFailed(self, tomo):
        """Record a tomogram the engine could not process; the others go on."""

        def create():
            failed = SetOfTomograms.create(self._getPath(), suffix="failed")
            failed.copyInfo(self.inTomograms.get())
            return failed

        with self._lock:
            failed = self._openOutput(FAILED_TOMOGRAMS, create)
            failed.append(tomo.clone())
            failed.write()
            self._store(failed)

    def _failedTsIds(self):
        failed = getattr(self, FAILED_TOMOGRAMS, None)
        return [] if failed is None else sorted(failed.getTSIds())

    def _register(self, tomo, folder):
        """Register the engine's files of one tomogram; FileNotFoundError when the engine wrote none."""
        raise NotImplementedError

    def getFolder(self, tsId):
        return os.path.abspath(self._getExtraPath(tsId))

    def _validate(self):
        model = self.model.get()
        if model is not None and not model.hasTarget(self.modelTarget):
            return [f"The model has no {self.modelTarget} (trained: {', '.join(model.getTargets()) or 'nothing'}): "
                    f"train it with the target '{self.modelTarget}'."]
        return self._rangeErrors(self.optionTable, self.engineCommand)

    def _warnings(self):
        model, tomograms = self.model.get(), self.inTomograms.get()
        if model is None or tomograms is None or not model.getVoxelSize():
            return []
        sampling = tomograms.getSamplingRate()
        if abs(sampling / model.getVoxelSize() - 1) > 0.05:
            return [f"The model was trained at {model.getVoxelSize():.2f} Å/px and these tomograms are "
                    f"{sampling:.2f} Å/px: the engine resamples them to the model's voxel size."]
        return []

    def _summaryFailed(self):
        reasons = self._failureReasons()
        return ["Failed:", *reasons] if reasons else []

    def _failureReasons(self):
        """'tsId: the engine's reason' for each tomogram in the failed output."""
        return [f"{tsId}: {engineReason(self.getFolder(tsId))}" for tsId in self._failedTsIds()]


class ProtCryoDiffSegSegment(ProtCryoDiffSegInference):
    """Segments membranes in tomograms with a U-Net trained on CryoDiffSeg pseudo-labels.

    Outputs a binary membrane mask and a membrane probability map per tomogram, both linked to their
    tomogram, and the mask's connected pieces as meshes (one group of points per piece, for tools that take
    single membranes). Tomograms the engine cannot process are listed in a separate output; the others go on.
    """

    _label = "segment membranes"
    _possibleOutputs = {MEMBRANE_MASKS: "SetOfTomoMasks", MEMBRANE_PROBABILITIES: "SetOfTomoMasks",
                        MEMBRANE_MESHES: "SetOfMeshes", FAILED_TOMOGRAMS: "SetOfTomograms"}
    engineCommand = "segment"
    modelTarget = "membranes"
    optionTable = SEGMENT_OPTIONS
    engineFixedArgs = ("--probability", "--pieces")

    def _defineParams(self, form):
        self._addInputParams(form)
        form.addParam("threshold", FloatParam, default=0.5, validators=[Range(0, 1)], label="Probability threshold",
                      help="Voxels with a membrane probability above this form the mask.")
        form.addParam("minSize", IntParam, default=100, validators=[GE(0)], label="Smallest piece (voxels)",
                      help="3D connected pieces of the mask smaller than this are removed; 0 keeps all.")
        form.addParam("axes", EnumParam, choices=["z", "zyx"], default=0, display=EnumParam.DISPLAY_HLIST,
                      expertLevel=LEVEL_ADVANCED, label="Prediction planes",
                      help="z: slice by slice, as the model was trained. zyx: also the y and x planes, averaged "
                           "(three times the work; the missing wedge makes those planes look different).")
        form.addParam("batchSize", IntParam, default=1, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Tiles per forward pass", help="Raise it on a GPU.")
        form.addParam("tileSize", IntParam, default=1024, validators=[GE(16)], expertLevel=LEVEL_ADVANCED,
                      label="Tile size (px)", help="Larger slices are cut into overlapping tiles (~0.6 GB per 1024 px "
                                                   "tile).")
        form.addParam("chunkSlices", IntParam, allowsNull=True, expertLevel=LEVEL_ADVANCED,
                      label="Slices per chunk", help="Slices read, predicted and written at a time. Empty: about "
                                                     "32 MiB worth.")
        form.addParam("pieceSpacing", IntParam, default=4, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Mesh point spacing (voxels)",
                      help="Each connected piece of the mask becomes a mesh: its voxels thinned to one point per cube "
                           "of this side (their mean). Also the box size of the mesh points.")
        self._addExtraArgsParam(form)
        self._addComputeParams(form)

    def _register(self, tomo, folder):
        mask = os.path.basename(findOutput(folder, MEMBRANE_MASK_SUFFIX))
        probability = os.path.basename(findOutput(folder, MEMBRANE_PROBABILITY_SUFFIX))
        self._appendTomoMask(MEMBRANE_MASKS, "membranes", tomo, self._getExtraPath(tomo.getTsId(), mask))
        self._appendTomoMask(MEMBRANE_PROBABILITIES, "probabilities", tomo,
                             self._getExtraPath(tomo.getTsId(), probability))
        self._appendMeshes(tomo, readPieces(findOutput(folder, MEMBRANE_PIECES_SUFFIX)))

    def _appendMeshes(self, tomo, pieces):
        """Register [(piece, x, y, z)] in 0-based voxels of tomo as mesh points, the piece as their group."""

        def create():
            meshes = SetOfMeshes.create(self._getPath(), template="meshes%s.sqlite", suffix="membranes")
            meshes.setPrecedents(self.inTomograms)
            meshes.setSamplingRate(self.inTomograms.get().getSamplingRate())
            meshes.setBoxSize(self.pieceSpacing.get())
            meshes.setNumberOfMeshes(0)
            return meshes

        with self._lock:
            meshes = self._openOutput(MEMBRANE_MESHES, create)
            for piece, x, y, z in pieces:
                point = MeshPoint()
                point.setVolume(tomo)  # before setPosition: the origin comes from the tomogram
                point.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
                point.setGroupId(piece)
                meshes.append(point)
            meshes.setNumberOfMeshes(meshes.getNumberOfMeshes() + len({piece for piece, *_ in pieces}))
            meshes.write()
            self._store(meshes)

    def _summary(self):
        masks, meshes = getattr(self, MEMBRANE_MASKS, None), getattr(self, MEMBRANE_MESHES, None)
        done = [] if masks is None else [f"{masks.getSize()} tomograms segmented (threshold {self.threshold.get()})."]
        if meshes is not None:
            done.append(f"{meshes.getNumberOfMeshes()} membrane pieces as meshes ({meshes.getSize()} points).")
        return done + self._summaryFailed()

    def _methods(self):
        masks = getattr(self, MEMBRANE_MASKS, None)
        if masks is None:
            return []
        return [f"Membranes of {masks.getSize()} tomograms were segmented slice by slice with a 2D U-Net "
                f"[Ronneberger2015] trained on CryoDiffSeg pseudo-labels [Gandhi2025] (probability threshold "
                f"{self.threshold.get()})."]

    def _citations(self):
        return ["Gandhi2025", "Ronneberger2015"]


class ProtCryoDiffSegPick(ProtCryoDiffSegInference):
    """Picks macromolecules in tomograms with the picker trained on CryoDiffSeg pseudo-points.

    The coordinates carry their score and the box size, sampling rate and tomograms that subtomogram
    extraction protocols need. Tomograms the engine cannot process are listed in a separate output.
    """

    _label = "pick particles"
    _possibleOutputs = {COORDINATES: "SetOfCoordinates3D", FAILED_TOMOGRAMS: "SetOfTomograms"}
    engineCommand = "pick"
    modelTarget = "particles"
    optionTable = PICK_OPTIONS

    def _defineParams(self, form):
        self._addInputParams(form)
        form.addParam("threshold", FloatParam, allowsNull=True, label="Score threshold",
                      help="Peaks of the picker's heat map (0-1) at or above this score become coordinates. Empty: "
                           "the threshold calibrated when the picker was trained, on held-out pseudo-points (0.5 "
                           "for pickers trained before calibration existed). Each tomogram's score histogram is "
                           "in its run folder.")
        form.addParam("minDistanceNm", FloatParam, allowsNull=True, label="Minimum distance (nm)",
                      help="Closest two picks may be. Empty: the radius of the particles the picker was trained for.")
        form.addParam("maxPoints", IntParam, allowsNull=True, expertLevel=LEVEL_ADVANCED,
                      label="Most particles per tomogram", help="Keep only this many best-scoring picks. Empty: all.")
        form.addParam("boxSize", IntParam, allowsNull=True, label="Box size (px)",
                      help="Box of the coordinates for extraction. Empty: the particle diameter the picker was "
                           "trained with, in pixels of these tomograms.")
        form.addParam("batchSize", IntParam, default=8, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Slices per network call", help="Lower it if the GPU runs out of memory.")
        form.addParam("chunkSlices", IntParam, default=32, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Slices per chunk", help="z slices scored at a time; bounds the memory used.")
        form.addParam("heatmap", BooleanParam, default=False, expertLevel=LEVEL_ADVANCED, label="Keep the heat map",
                      help="Also write the picker's heat map (MRC, at the picker's voxel size) in the run folder.")
        form.addParam("average", BooleanParam, default=True, label="Average the picks",
                      help="Average the subvolumes at the picks, and at as many random positions, per tomogram: a "
                           "figure (central slices, half-set FSC) and figures of merit in the run folder, to judge "
                           "whether the picks are particles before extraction.")
        form.addParam("averageBox", IntParam, allowsNull=True, condition="average", expertLevel=LEVEL_ADVANCED,
                      label="Averaging box (px)", help="Side of the averaged subvolumes. Empty: 1.6 particle diameters.")
        self._addExtraArgsParam(form)
        self._addComputeParams(form)

    def _validate(self):
        errors = super()._validate()
        threshold, box = self.threshold.get(), self.averageBox.get()
        if threshold is not None and not 0 < threshold <= 1:  # empty: the picker's calibrated threshold
            errors.append(f"The score threshold must lie in (0, 1], or be empty for the calibrated one; got {threshold}.")
        if box is not None and box < 4:
            errors.append(f"The averaging box must be at least 4 px, or empty; got {box}.")
        return errors

    def _register(self, tomo, folder):
        points = readPoints(findOutput(folder, PARTICLES_SUFFIX))
        self._appendCoordinates(COORDINATES, tomo, points, self._boxSize())

    def _boxSize(self):
        """The box size in pixels of the input tomograms: the one given, else the picker's particle diameter."""
        if self.boxSize.get():
            return self.boxSize.get()
        diameter = self.model.get().getParticleDiameter()
        return 2 * math.ceil(diameter / self.inTomograms.get().getSamplingRate() / 2)

    def _summary(self):
        coordinates = getattr(self, COORDINATES, None)
        done = [] if coordinates is None else [f"{coordinates.getSize()} particles picked, box "
                                               f"{coordinates.getBoxSize()} px."]
        return done + self._summaryFailed()

    def _methods(self):
        coordinates = getattr(self, COORDINATES, None)
        if coordinates is None:
            return []
        threshold = self.threshold.get()
        chosen = f"score threshold {threshold}" if threshold is not None else "score threshold calibrated on held-out pseudo-points"
        return [f"{coordinates.getSize()} macromolecules were picked with a particle picker trained on CryoDiffSeg "
                f"pseudo-points [Gandhi2025] ({chosen})."]
