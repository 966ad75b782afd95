"""Pseudo-labels: membrane pseudo-masks and macromolecule pseudo-points on the slabs the user chose."""

import os
import re

from pyworkflow.protocol import (
    GE,
    GT,
    LEVEL_ADVANCED,
    BooleanParam,
    EnumParam,
    FloatParam,
    IntParam,
    PointerParam,
    Range,
    StringParam,
    TextParam,
)
from pyworkflow.protocol.constants import STEPS_PARALLEL

from .. import Plugin
from ..constants import MEMBRANE_SOURCES, PAPER_BACKBONE, PARTICLE_SOURCES, PSEUDO_MASKS, PSEUDO_POINTS, WEIGHTS_VAR
from ..convert import AUTO, SlabError, parseSlabs, readManifest, readPoints, slabSlices
from ..runtime import LOCAL
from .protocol_base import ProtCryoDiffSegBase

# (form parameter, engine option) of `cryodiffseg pseudolabel`
PSEUDOLABEL_OPTIONS = (
    ("preset", "--preset"),
    ("membranes", "--membranes"),
    ("particles", "--particles"),
    ("particleDiameterNm", "--particle-diameter-nm"),
    ("blobThreshold", "--blob-threshold"),
    ("calibrationNm", "--calibration-nm"),
    ("sheetScaleNm", "--sheet-scale-nm"),
    ("sheetLow", "--sheet-low"),
    ("sheetHigh", "--sheet-high"),
    ("sheetDepthNm", "--sheet-depth-nm"),
    ("sheetLengthNm", "--sheet-length-nm"),
    ("sheetLumenNm", "--sheet-lumen-nm"),
    ("attentionWeight", "--attention-weight"),
    ("dtype", "--dtype"),
    ("solver", "--solver"),
    ("tiling", "--tiling"),
    ("tileSize", "--tile-size"),
    ("tileOverlap", "--tile-overlap"),
    ("tileJpegQuality", "--tile-jpeg-quality"),
    ("clahe", "--clahe"),
    ("smoothingSigma", "--smoothing-sigma"),
    ("numSamples", "--num-samples"),
    ("maxTimestep", "--max-timestep"),
    ("batchSize", "--batch-size"),
    ("seed", "--seed"),
    ("numMaps", "--num-maps"),
    ("directReuse", "--direct-reuse"),
    ("paperIterations", "--paper-iterations"),
    ("paperReuse", "--paper-reuse"),
    ("canvasMaps", "--canvas-maps"),
    ("maxBaseContours", "--max-base-contours"),
    ("maxMergedContours", "--max-merged-contours"),
    ("minSsim", "--min-ssim"),
    ("zAgreement", "--z-agreement"),
    ("zOutlier", "--z-outlier"),
    ("thresholdBlock", "--threshold-block"),
    ("thresholdOffset", "--threshold-offset"),
    ("splitter", "--splitter"),
    ("diameter", "--diameter"),
    ("flowThreshold", "--flow-threshold"),
    ("cellprobThreshold", "--cellprob-threshold"),
    ("circularity", "--circularity"),
    ("minAreaNm", "--min-area-nm"),
    ("membraneDistance", "--membrane-distance"),
    ("crowdingDistance", "--crowding-distance"),
    ("dedupNm", "--dedup-nm"),
    ("dedup", "--dedup"),
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
PRESETS = ["default", "paper"]  # the engine's --preset choices
# The form parameters the engine's paper preset sets: not passed (nor shown) when it is chosen.
PAPER_PRESET_PARAMS = ("membranes", "particles", "solver", "directReuse", "tiling", "tileJpegQuality", "splitter", "dedup", "dtype")


class ProtCryoDiffSegPseudoLabels(ProtCryoDiffSegBase):
    """Pseudo-labels a few slabs of a few representative tomograms, without manual annotation.

    By default from the tomogram itself: membranes are dark sheets at the bilayer's scale that continue
    through z, particles dark blobs of the particle's size (3-D Hessian and Laplacian of Gaussian), measured
    better than the attention canvas of the backbones that run offline. The paper's way, a diffusion model's
    self-attention eigen-maps aggregated into a canvas, thresholded and split into instances, remains a choice
    for either. The result is a membrane pseudo-mask per tomogram (only the slab slices are labelled),
    pseudo-points, and held-out points beyond the slab that calibrate the picker's threshold. They train the
    segmentation and picking models (protocol 'train').
    """

    _label = "pseudo-labels"
    _possibleOutputs = {PSEUDO_MASKS: "SetOfTomoMasks", PSEUDO_POINTS: "SetOfCoordinates3D"}
    stepsExecutionMode = STEPS_PARALLEL

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inTomograms", PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Representative tomograms",
                      help="A few tomograms that show the structures of the data set; only their slabs are labelled.")
        form.addParam("slabs", TextParam, important=True, label="Slabs per tomogram",
                      help="For every tomogram, its tsId, a colon and 0-based z slices; entries separated by ';' or "
                           "new lines. Slices: A-B inclusive, A:B half-open, A; comma-separated.\n"
                           "Example: TS_0008: 201-298; TS_0010: 100-140, 150\n"
                           "'auto' instead of slices (TS_0010: auto), or 'auto' alone for every tomogram: the engine "
                           "chooses 2 slabs of 2 slices inside the sample, typical of the tomogram's content; the QC figures "
                           "show its per-slice scores.\n"
                           "The paper labels about 100 slices of one tomogram.")
        form.addParam("preset", EnumParam, choices=PRESETS, default=0, display=EnumParam.DISPLAY_HLIST,
                      label="Preset",
                      help="default: the measured best settings (membranes and particles from the tomogram itself). "
                           f"paper: the published method as its authors ran it (attention canvas of {PAPER_BACKBONE} "
                           "in float32, the paper solver, quadrisect tiling with JPEG tiles, CellPose, greedy de-duplication); the "
                           "fields it sets are hidden. The backbone field, when filled, still applies.")
        form.addParam("pointsBoxSize", IntParam, default=32, validators=[GE(1)], label="Box size of pseudo-points (px)",
                      help="Box that extraction protocols cut around each pseudo-point (Scipion only).")

        form.addSection(label="Membranes")
        form.addParam("membranes", EnumParam, condition="preset == 0", choices=list(MEMBRANE_SOURCES), default=0,
                      display=EnumParam.DISPLAY_HLIST, label="Membrane pseudo-mask from",
                      help="sheets: dark sheets at the bilayer's scale that continue through z (measured best, "
                           "see the engine's BENCHMARKS.md). attention: the diffusion model's attention canvas, "
                           "as in the paper. both: the sheet evidence weighted by the canvas.")
        form.addParam("sheetScaleNm", FloatParam, default=3.0, validators=[GT(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Sheet scale (nm)",
                      help="Gaussian scale of the 3-D Hessian: about a bilayer's thickness.")
        form.addParam("sheetLow", FloatParam, default=2.25, validators=[GT(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Sheet threshold: low (noise levels)",
                      help="Low hysteresis threshold of the sheet measure, in units of the tomogram's noise level; "
                           "sheets are followed through z above it.")
        form.addParam("sheetHigh", FloatParam, default=4.0, validators=[GT(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Sheet threshold: high (noise levels)",
                      help="High hysteresis threshold: every kept piece reaches it somewhere.")
        form.addParam("sheetDepthNm", FloatParam, default=30.0, validators=[GE(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Sheet depth (nm)",
                      help="A kept sheet continues through this much of the section along z; filaments and "
                           "particles smeared by the missing wedge do not.")
        form.addParam("sheetLengthNm", FloatParam, default=30.0, validators=[GE(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Sheet length (nm)",
                      help="A kept piece of a slice is at least this long.")
        form.addParam("sheetLumenNm", FloatParam, default=5.0, validators=[GE(0)], condition="preset == 0 and membranes != 1",
                      expertLevel=LEVEL_ADVANCED, label="Vesicle lumen (nm)",
                      help="A piece closed around a lighter lumen of at least this radius is kept whatever its "
                           "depth (small vesicles). 0 switches this off.")
        form.addParam("attentionWeight", FloatParam, default=0.5, validators=[Range(0, 1)],
                      condition="preset == 0 and membranes == 2", expertLevel=LEVEL_ADVANCED, label="Attention weight",
                      help="The canvas darkness scales the sheet evidence by 1 +- this.")

        form.addSection(label="Particles")
        form.addParam("particles", EnumParam, condition="preset == 0", choices=list(PARTICLE_SOURCES), default=0,
                      display=EnumParam.DISPLAY_HLIST, label="Pseudo-points from",
                      help="blobs: dark blobs of the particle's size (measured best, see the engine's "
                           "BENCHMARKS.md). attention: round instances of the attention canvas, as in the paper. "
                           "both: the blobs that lie on round canvas instances.")
        form.addParam("particleDiameterNm", FloatParam, default=25.0, validators=[GT(0)], condition="preset == 0 and particles != 1",
                      label="Particle diameter (nm)", help="Diameter of the particles to find (25 nm: a ribosome).")
        form.addParam("blobThreshold", FloatParam, default=8.0, validators=[GT(0)], condition="preset == 0 and particles != 1",
                      expertLevel=LEVEL_ADVANCED, label="Blob threshold (noise levels)",
                      help="Blob measure threshold in units of the tomogram's noise level.")
        form.addParam("calibrationNm", FloatParam, default=50.0, validators=[GE(0)], condition="preset == 0 and particles != 1",
                      expertLevel=LEVEL_ADVANCED, label="Calibration depth (nm)",
                      help="Held-out slices on each side of the slab, beyond half a particle, whose blob centres "
                           "calibrate the picker's score threshold.")

        form.addSection(label="Attention features")
        form.addParam("backbone", StringParam, default="", label="Diffusion backbone",
                      help=f"'auto' (the paper's {PAPER_BACKBONE} when its weights are in the local Hugging Face "
                           f"cache, otherwise 'compact'), 'compact' (shipped with the engine: offline and fast on "
                           f"a CPU), a Hugging Face hub id, a diffusers folder or a checkpoint file. Empty: the "
                           f"CRYODIFFSEG_BACKBONE setting (now '{Plugin.getBackbone()}').")
        form.addParam("backboneConfig", StringParam, default="", expertLevel=LEVEL_ADVANCED,
                      label="Backbone configuration folder",
                      help="For a single checkpoint file without network: a diffusers folder with the component "
                           "configurations. Empty: automatic.")
        form.addParam("dtype", EnumParam, condition="preset == 0", choices=["auto", "float32", "float16", "bfloat16"], default=0,
                      expertLevel=LEVEL_ADVANCED, label="Precision",
                      help="Model precision; auto is float32 on the CPU, where half precision is much slower.")
        form.addParam("tiling", EnumParam, condition="preset == 0", choices=["native", "quadrisect"], default=0,
                      display=EnumParam.DISPLAY_HLIST, label="Tiling",
                      help="native: tiles at the tomogram's pixel size. quadrisect: the reference code's 2x2 "
                           "patches of each slice resized to 1024 px.")
        form.addParam("tileSize", IntParam, allowsNull=True, expertLevel=LEVEL_ADVANCED, label="Tile size (px)",
                      help="Model input tile side. Empty: the backbone's own size.")
        form.addParam("tileOverlap", IntParam, allowsNull=True, expertLevel=LEVEL_ADVANCED,
                      label="Tile overlap (px)", help="Overlap of native tiles; half of it is kept clear of tile edges. Empty: 1/4 of a tile.")
        form.addParam("tileJpegQuality", IntParam, default=0, validators=[Range(0, 100)], condition="preset == 0",
                      expertLevel=LEVEL_ADVANCED, label="Tile JPEG quality",
                      help="0: model-input tiles stay lossless. 1-100: each tile goes through a JPEG round trip of "
                           "this quality, as the reference code's tile files do (95).")
        form.addParam("clahe", BooleanParam, default=False, expertLevel=LEVEL_ADVANCED, label="CLAHE",
                      help="Contrast-limited histogram equalisation before smoothing (named by the paper, "
                           "discarded by its code).")
        form.addParam("smoothingSigma", FloatParam, default=1.25, validators=[GE(0)], expertLevel=LEVEL_ADVANCED,
                      label="Smoothing sigma (px)", help="Gaussian smoothing of each slice before the model.")
        form.addParam("numSamples", IntParam, default=4, validators=[GE(1)], label="Noise samples per tile",
                      help="Noisy forward passes per tile; their attention is averaged. Cost grows linearly.")
        form.addParam("maxTimestep", IntParam, allowsNull=True, expertLevel=LEVEL_ADVANCED,
                      label="Largest noise timestep",
                      help="Empty: floor(68 / voxel size in nm), the paper's rule (50 at 1.35 nm).")
        form.addParam("batchSize", IntParam, default=4, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Tiles per forward pass", help="Lower it if the GPU runs out of memory.")
        form.addParam("seed", IntParam, default=0, expertLevel=LEVEL_ADVANCED, label="Random seed",
                      help="Seed of the VAE sampling and the noise.")
        form.addParam("solver", EnumParam, condition="preset == 0", choices=["direct", "paper"], default=0, display=EnumParam.DISPLAY_HLIST,
                      label="Eigen-map solver",
                      help="direct: an eigensolver on the averaged attention (fast). paper: the reference's "
                           "gradient descent (thousands of iterations per tile).")
        form.addParam("numMaps", IntParam, default=12, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Eigen-maps per tile", help="Number of spectral maps computed per tile.")
        form.addParam("directReuse", FloatParam, default=0.0, validators=[Range(0, 1)], condition="preset == 0 and solver == 0",
                      expertLevel=LEVEL_ADVANCED, label="Direct solver: layer weights",
                      help="0: every attention layer weighs the same. p > 0: the layers weigh as in the paper "
                           "solver's objective when it reuses the mid/up attention with probability p (the paper: 0.9, "
                           "which leaves the down-path layers 3.75% of the weight).")
        form.addParam("paperIterations", IntParam, default=2000, validators=[GE(1)], condition="preset == 1 or solver == 1",
                      expertLevel=LEVEL_ADVANCED, label="Paper solver: iterations",
                      help="Gradient iterations of the reference solver.")
        form.addParam("paperReuse", FloatParam, default=0.9, validators=[Range(0, 1)], condition="preset == 1 or solver == 1",
                      expertLevel=LEVEL_ADVANCED, label="Paper solver: attention reuse",
                      help="Probability that an iteration reuses the buffered mid/up attention.")

        form.addSection(label="Canvas and mask")
        form.addParam("canvasMaps", IntParam, default=10, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Eigen-maps for the canvas", help="Leading eigen-maps the canvas is built from.")
        form.addParam("maxBaseContours", IntParam, default=10, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Base: most contours", help="A base map has at most this many Otsu contours.")
        form.addParam("maxMergedContours", IntParam, default=15, validators=[GE(1)], expertLevel=LEVEL_ADVANCED,
                      label="Merge: most contours", help="A merged canvas has at most this many Otsu contours.")
        form.addParam("minSsim", FloatParam, default=0.35, validators=[Range(-1, 1)], expertLevel=LEVEL_ADVANCED,
                      label="Merge: minimum SSIM", help="A map merges only if its SSIM with the base exceeds this.")
        form.addParam("zAgreement", FloatParam, default=0.9, validators=[Range(-1, 1)], expertLevel=LEVEL_ADVANCED,
                      label="z-correction: neighbour agreement",
                      help="Two neighbouring slices agree when their SSIM exceeds this.")
        form.addParam("zOutlier", FloatParam, default=0.8, validators=[Range(-1, 1)], expertLevel=LEVEL_ADVANCED,
                      label="z-correction: outlier similarity",
                      help="A slice below this SSIM to both agreeing neighbours is replaced by their mean.")
        form.addParam("thresholdBlock", IntParam, default=15, validators=[GE(3)], label="Threshold block (px)",
                      help="Odd block size of the adaptive Gaussian threshold.")
        form.addParam("thresholdOffset", FloatParam, default=3.0, label="Threshold offset",
                      help="Foreground is darker than the local Gaussian mean minus this (0-255 canvas units).")

        form.addSection(label="Instances and points")
        form.addParam("splitter", EnumParam, condition="preset == 0", choices=["auto", "cellpose", "watershed"], default=0,
                      display=EnumParam.DISPLAY_HLIST, label="Instance splitter",
                      help="auto: CellPose when its weights are installed, else a watershed. cellpose: fail "
                           "without the weights.")
        form.addParam("cellposeModel", StringParam, default="", label="CellPose model",
                      condition="preset == 1 or splitter != 2",
                      help=f"A CellPose model name or weights file. Empty: the CRYODIFFSEG_CELLPOSE_MODEL setting "
                           f"(now '{Plugin.getCellposeModel()}').")
        form.addParam("diameter", FloatParam, default=10.0, validators=[GE(0)], label="Instance diameter (px)",
                      help="Expected diameter of the instances CellPose splits.")
        form.addParam("flowThreshold", FloatParam, default=0.4, expertLevel=LEVEL_ADVANCED, condition="preset == 1 or splitter != 2",
                      label="CellPose flow threshold", help="Maximum flow error of a kept instance.")
        form.addParam("cellprobThreshold", FloatParam, default=0.0, expertLevel=LEVEL_ADVANCED,
                      condition="preset == 1 or splitter != 2", label="CellPose cell-probability threshold",
                      help="Pixels above this cell probability belong to instances.")
        form.addParam("circularity", FloatParam, default=0.95, validators=[Range(0, 1)], label="Minimum circularity",
                      help="Instances at least this round (4 pi area / perimeter^2) are macromolecules; they leave "
                           "the membrane mask and may become pseudo-points.")
        form.addParam("minAreaNm", FloatParam, default=30.0, validators=[GE(0)], expertLevel=LEVEL_ADVANCED,
                      label="Points: minimum area factor",
                      help="Smallest instance area for a point, in px: this value / voxel size in nm.")
        form.addParam("membraneDistance", FloatParam, default=10.0, validators=[GE(0)], expertLevel=LEVEL_ADVANCED,
                      label="Points: distance from membrane (px)", help="Points lie farther than this from membrane.")
        form.addParam("crowdingDistance", FloatParam, default=32.0, validators=[GE(0)], expertLevel=LEVEL_ADVANCED,
                      label="Points: crowding distance (px)",
                      help="Both points of a pair closer than this are dropped.")
        form.addParam("dedupNm", FloatParam, default=15.0, validators=[GE(0)], expertLevel=LEVEL_ADVANCED,
                      label="Points: 3D de-duplication (nm)", help="Points closer than this in 3D are merged.")
        form.addParam("dedup", EnumParam, condition="preset == 0", choices=["centre", "first"], default=0, display=EnumParam.DISPLAY_HLIST,
                      expertLevel=LEVEL_ADVANCED, label="Points: merged duplicates keep",
                      help="centre: each particle's most central point. first: the first one found (the "
                           "reference code).")
        self._addExtraArgsParam(form)
        self._addComputeParams(form)

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self.tomograms = self._tomogramsByTsId(self.inTomograms.get())
        self.slabsByTsId = parseSlabs(self.slabs.get(), self.tomograms)
        registered = []
        for tsId in self.tomograms:
            labelled = self._insertFunctionStep(self.pseudoLabelStep, tsId, prerequisites=[], needsGPU=True)
            registered.append(self._insertFunctionStep(self.registerStep, tsId, prerequisites=[labelled],
                                                       needsGPU=False))
        self._insertFunctionStep(self._closeOutputSet, prerequisites=registered, needsGPU=False)

    def pseudoLabelStep(self, tsId):
        tomogram = os.path.abspath(self.tomograms[tsId].getFileName())
        args = ["pseudolabel", tomogram, "--slabs", self.slabsByTsId[tsId], "--out", self.getFolder(tsId),
                "--voxel-size", str(self.tomograms[tsId].getSamplingRate()), "--cellpose-model", self._cellposeModel()]
        paper = self.getEnumText("preset") == "paper"
        if not paper or self.backbone.get():  # the paper preset names its own backbone unless one is given
            args += ["--backbone", self._backbone()]
        if self._backboneConfig():
            args += ["--backbone-config", self._backboneConfig()]
        args += self._engineOptions([option for option in PSEUDOLABEL_OPTIONS if not (paper and option[0] in PAPER_PRESET_PARAMS)])
        inputs = [tomogram] + [path for path in (self._backbone(), self._backboneConfig(), self._cellposeModel())
                               if _isLocalPath(path)]
        self._runEngine(args, inputs, self.getFolder(tsId))

    def registerStep(self, tsId):
        tomo, folder = self.tomograms[tsId], self.getFolder(tsId)
        manifest = readManifest(folder)
        mask = self._getExtraPath(tsId, manifest["outputs"]["membrane_mask"])
        self._appendTomoMask(PSEUDO_MASKS, "pseudo", tomo, mask)
        points = readPoints(os.path.join(folder, manifest["outputs"]["points"]))
        self._appendCoordinates(PSEUDO_POINTS, tomo, points, self.pointsBoxSize.get())

    # ------------------------------------------------------------------ for the train protocol and viewers
    def getFolder(self, tsId):
        """Absolute engine output folder of one tomogram (pseudolabels.json, mask, points, qc/)."""
        return os.path.abspath(self._getExtraPath(tsId))

    def getLabelledTsIds(self):
        masks = getattr(self, PSEUDO_MASKS, None)
        return [] if masks is None else sorted(masks.getTSIds())

    # ------------------------------------------------------------------ helpers
    def _backbone(self):
        return _resolve(self.backbone.get() or Plugin.getBackbone())

    def _backboneConfig(self):
        return _resolve(self.backboneConfig.get() or "")

    def _cellposeModel(self):
        return _resolve(self.cellposeModel.get() or Plugin.getCellposeModel())

    # ------------------------------------------------------------------ info
    def _validate(self):
        if self.inTomograms.get() is None:
            return []  # reported by Scipion as an empty input
        errors = []
        tomograms = self._tomogramsByTsId(self.inTomograms.get())
        try:
            slabs = parseSlabs(self.slabs.get(), tomograms)
        except SlabError as error:
            return [f"Slabs: {error}"]
        unknown = sorted(set(slabs) - set(tomograms))
        if unknown:
            errors.append(f"Slabs name tomograms that are not in the input: {', '.join(unknown)} "
                          f"(input tsIds: {', '.join(tomograms)}).")
        missing = [tsId for tsId in tomograms if tsId not in slabs]
        if missing:
            errors.append(f"Give slabs for every input tomogram; missing: {', '.join(missing)}.")
        for tsId, spec in slabs.items():
            if tsId in tomograms and spec != AUTO:
                depth = tomograms[tsId].getDim()[2]
                if max(slabSlices(spec)) >= depth:
                    errors.append(f"Slabs of {tsId} reach slice {max(slabSlices(spec))} but it has {depth} "
                                  f"slices (0-{depth - 1}).")
        errors += self._weightErrors()
        errors += self._rangeErrors(PSEUDOLABEL_OPTIONS, "pseudolabel")
        if self.thresholdBlock.get() % 2 == 0:
            errors.append("Threshold block must be odd.")
        return errors

    def _weightErrors(self):
        errors = []
        backbone = self._backbone()
        if _isLocalPath(backbone) and not os.path.exists(backbone):
            errors.append(f"The diffusion backbone {backbone} does not exist.")
        config = self._backboneConfig()
        if config and not os.path.isdir(config):
            errors.append(f"The backbone configuration folder {config} does not exist.")
        cellpose = self._cellposeModel()
        if self.getEnumText("splitter") != "watershed" and _isLocalPath(cellpose) and not os.path.isfile(cellpose):
            errors.append(f"The CellPose weights file {cellpose} does not exist.")
        return errors

    def _warnings(self):
        backbone = self._backbone()
        if not _HUB_ID.match(backbone) or _isLocalPath(backbone):
            return []
        if Plugin.getRuntime().kind == LOCAL:
            return [f"The backbone {backbone} is read from the Hugging Face cache or downloaded: nodes without "
                    f"network need it in their cache or as a local folder."]
        return [f"The container runs without network: the backbone {backbone} must be baked into the image "
                f"(SD_MODEL={backbone}) or be in the Hugging Face cache of the weights folder {WEIGHTS_VAR}."]

    def _summary(self):
        summary = [f"Slabs: {' '.join((self.slabs.get() or '').split())}"]
        masks, points = getattr(self, PSEUDO_MASKS, None), getattr(self, PSEUDO_POINTS, None)
        if masks is not None:
            summary.append(f"{masks.getSize()} tomograms pseudo-labelled, "
                           f"{0 if points is None else points.getSize()} pseudo-points.")
            summary += summarizeRecords([readManifest(self.getFolder(tsId)) for tsId in self.getLabelledTsIds()])
        return summary

    def _methods(self):
        masks = getattr(self, PSEUDO_MASKS, None)
        if masks is None:
            return []
        records = [readManifest(self.getFolder(tsId)) for tsId in self.getLabelledTsIds()]
        slices = sum(len(record["labelled_slices"]) for record in records)
        tomograms = f"{len(records)} tomogram{'' if len(records) == 1 else 's'}"
        return [describeRun(records, slices, tomograms, self.getEnumText("solver"), self.numSamples.get())]

    def _citations(self):
        masks = getattr(self, PSEUDO_MASKS, None)
        if masks is None:
            return ["Gandhi2025", "Rombach2022"]
        return citationsFor([readManifest(self.getFolder(tsId)) for tsId in self.getLabelledTsIds()])


def describeRun(records, slices, tomograms, solver, samples):
    """The Methods sentence of a pseudo-label run, from what the engine records it did."""
    membranes = sorted({(record.get("membranes") or {}).get("source", "attention") for record in records})
    particles = sorted({(record.get("particles") or {}).get("source", "attention") for record in records})
    text = (f"Membrane pseudo-masks and particle pseudo-points were computed without manual labels on {slices} slices "
            f"of {tomograms} with CryoDiffSeg [Gandhi2025].")
    if any(record.get("splitter") for record in records):  # the attention canvas ran
        backbones = sorted({(record.get("backbone") or {}).get("source") or record["config"]["backbone"]["source"]
                            for record in records if record.get("splitter")})
        splitters = sorted({record["splitter"] for record in records if record.get("splitter")})
        split = " and ".join("CellPose [Stringer2021]" if s == "cellpose" else "a distance-transform watershed" for s in splitters)
        text += (f" Canvases were built from the self-attention eigen-maps of the diffusion backbone "
                 f"{', '.join(backbones)} [Rombach2022] ({solver} solver, {samples} noise samples per tile), adaptively "
                 f"thresholded and split into instances with {split}.")
    membrane_text = {
        "sheets": "dark sheets at the bilayer's scale (3-D Hessian plate measure) that continue through z",
        "attention": "the non-round instances of the canvases",
        "both": "dark sheets at the bilayer's scale that continue through z, weighted by the canvases",
    }
    particle_text = {
        "blobs": "dark blobs of the particle's size (scale-selected 3-D Laplacian of Gaussian)",
        "attention": "the round instances of the canvases, away from membranes",
        "both": "dark blobs of the particle's size lying on round instances of the canvases",
    }
    return (f"{text} Membrane pseudo-masks are {'; '.join(membrane_text[s] for s in membranes)}; pseudo-points are "
            f"{'; '.join(particle_text[s] for s in particles)}.")


def summarizeRecords(records):
    """What ran, from the engine's records: the preset, where membranes and points came from, the backbone."""
    lines = []
    for record in records:
        preset = (record.get("config") or {}).get("preset", "default")
        membranes = (record.get("membranes") or {}).get("source", "attention")
        particles = (record.get("particles") or {}).get("source", "attention")
        backbone = record.get("backbone") or {}
        used = f"backbone {backbone['source']} ({backbone.get('reason', '')})" if backbone.get("source") else "no diffusion model"
        chosen = "chosen automatically" if record.get("slab_selection") else "given"
        lines.append(f"{record.get('tomogram_name', '?')}: slices {sliceRanges(record.get('labelled_slices', []))} "
                     f"({chosen}), preset {preset}, membranes from {membranes}, points from {particles}, {used}.")
    return lines


def sliceRanges(slices):
    """'3-5,8' for [3, 4, 5, 8]: the labelled slices as a slab spec."""
    ranges = []
    for z in sorted(slices):
        if ranges and z == ranges[-1][1] + 1:
            ranges[-1][1] = z
        else:
            ranges.append([z, z])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in ranges)


def citationsFor(records):
    cited = ["Gandhi2025"]
    if any(record.get("splitter") for record in records):  # the diffusion model ran
        cited.append("Rombach2022")
    if any(record.get("splitter") == "cellpose" for record in records):
        cited.append("Stringer2021")
    return cited


def _resolve(value):
    """A backbone/model setting as the engine gets it: local files and folders as absolute paths."""
    return os.path.abspath(os.path.expanduser(value)) if _isLocalPath(value) else value


def _isLocalPath(value):
    """True when a backbone/model setting names a file or folder (not a shipped name or a hub id)."""
    return bool(value) and (value.startswith(("/", ".", "~")) or os.path.exists(value))
