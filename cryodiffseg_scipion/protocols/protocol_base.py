"""What every CryoDiffSeg protocol shares: running the engine command and building Scipion outputs."""

import glob
import importlib
import os
import shlex

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.object import Set
from pyworkflow.protocol import GPU_LIST, LEVEL_ADVANCED, BooleanParam, EnumParam, StringParam
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomoMasks, TomoMask

from .. import Plugin


class ProtCryoDiffSegBase(EMProtocol):
    """Base of the CryoDiffSeg protocols (not shown in the GUI)."""

    _devStatus = BETA

    # ------------------------------------------------------------------ form
    @staticmethod
    def _addComputeParams(form, perTomogram=True):
        """GPU list and threads, by default what this machine has; per-tomogram protocols run one engine process
        per tomogram in parallel."""
        form.addHidden(GPU_LIST, StringParam, default=machineGpuIds(), label="GPU IDs",
                       help="GPUs the engine may use, e.g. '0 1'. With several Scipion threads each tomogram that "
                            "runs at the same time gets its own GPU from this list. Empty: run on the CPU.")
        if perTomogram:
            form.addParallelSection(threads=1, mpi=0, binThreads=machineCores(),
                                    binThreadsHelp="CPU threads of each engine process (OMP_NUM_THREADS).")
        else:
            form.addParallelSection(threads=machineCores(), mpi=0)

    @staticmethod
    def _addExtraArgsParam(form):
        form.addParam("extraArgs", StringParam, default="", expertLevel=LEVEL_ADVANCED,
                      label="Additional engine options",
                      help="Options appended to the cryodiffseg command line, e.g. '--verbose'.")

    # ------------------------------------------------------------------ engine
    def _engineOptions(self, options):
        """Command-line words for (param name, engine flag) pairs; empty values leave the engine's default."""
        words = []
        for name, flag in options:
            param, value = self.getParam(name), getattr(self, name).get()
            if value is None or value == "":
                continue
            if isinstance(param, BooleanParam):
                words.append(flag if value else "--no-" + flag[2:])
            elif isinstance(param, EnumParam):
                words += [flag, self.getEnumText(name)]
            else:
                words += [flag, str(value)]
        return words + shlex.split(self.extraArgs.get() or "")

    def _rangeErrors(self, options, command):
        """Form values outside the engine's own limits for them (read from the engine's option table, the one
        source of truth), so that the form refuses what the engine would refuse only after the run started."""
        ranges = engineRanges(command)
        errors = []
        for name, flag in options:
            value = getattr(self, name).get()
            allowed = ranges.get(flag)
            if allowed is None or value is None or value == "" or not self.evalParamCondition(name):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not allowed.contains(value):
                errors.append(f"{self.getParam(name).label.get()}: {value} is not allowed; the value must be "
                              f"{allowed.describe()}.")
        return errors

    def _runEngine(self, engineArgs, inputs, outputDir):
        """Run ``cryodiffseg <engineArgs>`` with this step's GPUs; a non-zero exit raises CalledProcessError.

        GPU ids come from the step executor (the ids ``%(GPU)s`` would receive), so CPU-only runs need no
        placeholder left unreplaced and paths may contain '%'.
        """
        os.makedirs(outputDir, exist_ok=True)
        call = Plugin.getRuntime().command(engineArgs, inputs=inputs, outputDir=outputDir,
                                           gpuIds=self.getExecutor().getGpuList(), threads=self.getBinThreads())
        self.runJob(call.program, call.arguments)

    # ------------------------------------------------------------------ outputs
    def _tomogramsByTsId(self, tomograms):
        return {tomo.getTsId(): tomo.clone() for tomo in tomograms.iterItems(orderBy="_tsId")}

    def _openOutput(self, name, createSet):
        """The output set called name, created by createSet() on first use; call under self._lock."""
        output = getattr(self, name, None)
        if output is not None:
            output.enableAppend()
            return output
        output = createSet()
        output.setStreamState(Set.STREAM_OPEN)
        self._defineOutputs(**{name: output})
        self._defineSourceRelation(self.inTomograms, output)
        return output

    def _appendTomoMask(self, name, suffix, tomo, fileName):
        """Register fileName as the mask of tomo (same tsId, sampling rate and origin; linked by file name)."""
        mask = TomoMask()
        mask.copyInfo(tomo)
        mask.setFileName(fileName)
        mask.setVolName(tomo.getFileName())

        def create():
            masks = SetOfTomoMasks.create(self._getPath(), suffix=suffix)
            masks.copyInfo(self.inTomograms.get())
            return masks

        with self._lock:
            masks = self._openOutput(name, create)
            masks.append(mask)
            masks.write()
            self._store(masks)

    def _appendCoordinates(self, name, tomo, points, boxSize):
        """Register [(x, y, z, score)] in 0-based voxels of tomo as 3D coordinates of the input tomograms."""

        def create():
            coordinates = SetOfCoordinates3D.create(self._getPath(), suffix=name)
            coordinates.setPrecedents(self.inTomograms)
            coordinates.setSamplingRate(self.inTomograms.get().getSamplingRate())
            coordinates.setBoxSize(boxSize)
            return coordinates

        with self._lock:
            coordinates = self._openOutput(name, create)
            for x, y, z, score in points:
                coordinate = Coordinate3D()
                coordinate.setVolume(tomo)  # before setPosition: the origin comes from the tomogram
                coordinate.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
                if score is not None:
                    coordinate.setScore(score)
                coordinates.append(coordinate)
            coordinates.write()
            self._store(coordinates)

    def _citations(self):
        return ["Gandhi2025"]


def engineRanges(command):
    """{flag: allowed range} of an engine command's options, from its command-line module (no torch imported)."""
    module = importlib.import_module(f"cryodiffseg.cli.{command}")
    options = [option for name in dir(module) if name.endswith("OPTIONS") for option in getattr(module, name)]
    return {option.flag: option.range for option in options}


def machineGpuIds():
    """'0' on a machine with an NVIDIA GPU, '' (run on the CPU) on one without."""
    return "0" if glob.glob("/dev/nvidia[0-9]*") else ""


def machineCores():
    """The CPU cores this process may use: the engine's threads when one tomogram runs at a time."""
    return len(os.sched_getaffinity(0))
