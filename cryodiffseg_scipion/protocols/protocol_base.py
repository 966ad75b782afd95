"""What every CryoDiffSeg protocol shares: running the engine command and building Scipion outputs."""

import glob
import importlib
import math
import os
import re
import shlex
import subprocess
import threading

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.object import Set
from pyworkflow.constants import QUEUE_FOR_JOBS
from pyworkflow.protocol import GPU_LIST, LEVEL_ADVANCED, BooleanParam, EnumParam, StringParam
from pyworkflow.protocol.constants import VOID_GPU
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomoMasks, TomoMask

from .. import Plugin
from ..constants import ENGINE_ERROR_FILE, PRODUCT_NAME
from ..runtime import EngineCall


class ProtCryoDiffSegBase(EMProtocol):
    """Base of the CryoDiffSeg protocols (not shown in the GUI)."""

    _devStatus = BETA

    @classmethod
    def getClassPackageName(cls):
        """Scipion names the form's compute section '<package> compute': the product's name, not the package's."""
        return PRODUCT_NAME

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
        """Run ``cryodiffseg <engineArgs>`` with this step's GPUs; a non-zero exit raises EngineFailed, which
        reads as the engine's own one-line reason (it writes it to a file in outputDir, --error-file).

        The engine logs its progress on stderr: it goes to the run's output log, the one users open while a
        run goes on. GPU ids come from the step executor (the ids ``%(GPU)s`` would receive), so CPU-only runs
        need no placeholder left unreplaced and paths may contain '%'.
        """
        os.makedirs(outputDir, exist_ok=True)
        errorFile = os.path.join(outputDir, ENGINE_ERROR_FILE)
        if os.path.exists(errorFile):  # a reason from an earlier try of this step
            os.remove(errorFile)
        call = Plugin.getRuntime().command(["--error-file", errorFile, *engineArgs], inputs=inputs,
                                           outputDir=outputDir, gpuIds=self.getExecutor().getGpuList(),
                                           threads=self.getBinThreads())
        call = EngineCall(call.program, f"{call.arguments} 2>&1")
        try:
            self._runEngineCall(call, outputDir)
        except subprocess.CalledProcessError as error:
            raise EngineFailed(error.returncode, str(call), engineReason(outputDir, error.returncode)) from None

    def _runEngineCall(self, call, outputDir):
        """Run an engine call as a job of this step; a non-zero exit raises CalledProcessError."""
        if self.useQueueForSteps():
            self._runEngineJob(call, outputDir)
        else:
            self.runJob(call.program, call.arguments)

    def _runEngineJob(self, call, outputDir):
        """Run the engine call as its own queue job (QUEUE_FOR_JOBS = Y) and learn how it ended.

        Scipion's queue executor waits until the job leaves the queue but never asks how it ended, so the job
        writes the engine's exit status to a file beside the output folder. A status other than 0 is the
        engine's own failure (CalledProcessError, as on this machine). No status: the queue ended the job
        (scancel, a time or memory limit, a failed node): the step fails saying so, and a continued run
        redoes it.
        """
        statusFile = outputDir.rstrip(os.sep) + QUEUE_STATUS_SUFFIX
        if os.path.exists(statusFile):
            os.remove(statusFile)
        _queueJobs.jobId = None
        # The job ends with the engine's status too (queues show it), whatever follows in the job template.
        self.runJob(call.program, f"{call.arguments}; {STATUS_VARIABLE}=$?; echo ${STATUS_VARIABLE} > "
                                  f"{shlex.quote(statusFile)}; (exit ${STATUS_VARIABLE})")
        try:
            with open(statusFile) as handle:
                status = int(handle.read().strip())
        except (OSError, ValueError):
            status = None
        if status is None:
            jobId = getattr(_queueJobs, "jobId", None)
            raise RuntimeError(
                f"The queue job {jobId} of this engine call ended before the engine did: the queue stopped it "
                f"(cancelled with scancel, past its time or memory limit, or its node failed). The job's own "
                f"output: {self._jobLogs()}. Continue this run to run the unfinished steps again.")
        if status != 0:
            raise subprocess.CalledProcessError(status, str(call))

    def _jobLogs(self):
        """Where the current step's last job wrote its output: Scipion names each step's jobs
        <protocol id>-<step id>-<count>, their logs (JOB_LOGS) in the run's logs folder."""
        thread = threading.current_thread()
        count = getattr(self.getExecutor(), "threadCommands", {}).get(getattr(thread, "thId", None))
        if not count:
            return f"the files named after the job in {os.path.abspath(self._getLogsPath())}"
        return os.path.abspath(self._getLogsPath(f"{self.strId()}-{thread.thId}-{count}")) + ".out and .err"

    def appendJobId(self, jobId):
        """Scipion's queue executor calls this from the step's thread with each job it submits."""
        super().appendJobId(jobId)
        _queueJobs.jobId = jobId

    def getSubmitDict(self):
        """Scipion's queue variables; with QUEUE_FOR_JOBS = Y a job is one engine call, so JOB_THREADS (and
        JOB_CORES) are that call's CPU threads and GPU_COUNT its GPUs, not the whole protocol's."""
        submit = super().getSubmitDict()
        if self.useQueue() and submit.get(QUEUE_FOR_JOBS) == "Y":
            submit["JOB_THREADS"] = submit["JOB_CORES"] = max(1, self.getBinThreads() or 1)
            submit["GPU_COUNT"] = gpusPerEngineCall(self.getGpuList(), self._engineWorkers())
        return submit

    def _engineWorkers(self):
        """How many engine calls Scipion runs at a time: its threads less the main one, in parallel mode."""
        threads = self.numberOfThreads.get() or 1
        return threads - 1 if self.modeParallel() and threads > 1 else 1

    def setFailed(self, msg):
        """Scipion colours the reason of a failed step for terminals; the summary and the GUI show it as text."""
        super().setFailed(plainText(msg))

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


QUEUE_STATUS_SUFFIX = ".job-status"  # beside an engine call's output folder: the exit status its queue job wrote
STATUS_VARIABLE = "cryodiffseg_status"  # the job script's shell variable holding it
_queueJobs = threading.local()  # the last job Scipion's queue executor submitted from this thread


def gpusPerEngineCall(gpuList, workers):
    """GPUs each engine call gets when Scipion shares gpuList out among `workers` concurrent steps (as its
    thread executor does: one each, or the list split evenly, the first ones taking the remainder)."""
    gpus = [gpu for gpu in gpuList if gpu != VOID_GPU]
    if not gpus:
        return 0
    return math.ceil(len(gpus) / workers) if len(gpus) > workers else 1


class EngineFailed(subprocess.CalledProcessError):
    """The engine exited with an error; reads as its one-line reason, not as the command line."""

    def __init__(self, returncode, cmd, reason):
        super().__init__(returncode, cmd)
        self.reason = reason

    def __str__(self):
        return self.reason


def engineReason(outputDir, returncode=None):
    """The engine's one-line reason for failing, from its --error-file in outputDir; when it wrote none (killed,
    or a crash before it parsed its arguments), what is known: its exit status, if given."""
    try:
        with open(os.path.join(outputDir, ENGINE_ERROR_FILE)) as handle:
            reason = handle.read().strip()
    except OSError:
        reason = ""
    if reason:
        return reason
    if returncode is None:
        return "The engine gave no reason; see the output log."
    if returncode < 0 or returncode in (137, 143):
        return f"The engine was killed (exit status {returncode}); the output log shows how far it got."
    return f"The engine exited with status {returncode} without giving a reason; see the output log."


_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")


def plainText(text):
    """text without terminal colour codes."""
    return _TERMINAL_CODES.sub("", text or "")


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
