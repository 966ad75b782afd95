"""Where the engine runs: on this machine (``local``) or inside the engine image (docker, podman, apptainer).

Scipion's ``runJob`` hands a single string to ``/bin/sh`` (also inside queue job scripts) and logs it, so
every word built here is shell-quoted. Containers run without network, as the calling user, with a clean
environment (Scipion's PYTHONPATH stays outside). Each input is bound read-only at the path the engine is
given, from its real location (Scipion's imported tomograms are symlinks the container could not follow);
the output folder is bound read-write. This module imports nothing from Scipion so it can be tested alone.
"""

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass

LOCAL = "local"
DOCKER = "docker"
PODMAN = "podman"
APPTAINER = "apptainer"
RUNTIMES = (LOCAL, DOCKER, PODMAN, APPTAINER)

ENGINE_IN_IMAGE = "cryodiffseg"  # the engine's command on the image's PATH
WEIGHTS_IN_IMAGE = "/opt/cryodiffseg/weights"  # where the image looks for weights (see the Dockerfile)
HOME_IN_CONTAINER = "/tmp"  # writable whichever user the container runs as
# Variables of Scipion's Python that would make the engine's Python import Scipion's packages.
SCIPION_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME")
IMAGE_CHECK_SECONDS = 60


def weightsEnvironment(weightsFolder):
    """Where the engine finds weights inside a weights folder: a Hugging Face cache and CellPose models."""
    return {"HF_HOME": os.path.join(weightsFolder, "huggingface"),
            "CELLPOSE_LOCAL_MODELS_PATH": os.path.join(weightsFolder, "cellpose")}


@dataclass(frozen=True)
class EngineCall:
    """A command line split the way ``runJob(program, arguments)`` takes it; both parts already quoted."""

    program: str
    arguments: str

    def __str__(self):
        return f"{self.program} {self.arguments}"


@dataclass(frozen=True)
class Runtime:
    """The runtime settings of the plugin (see the CRYODIFFSEG_* variables)."""

    kind: str = LOCAL
    engine: str = "cryodiffseg"  # local: the engine command (a path or a name on PATH)
    image: str = ""  # containers: image name, or the .sif file for apptainer
    extraArgs: str = ""  # containers: extra options for `run` / `exec`, e.g. "--shm-size 8g"
    weights: str = ""  # a weights folder (huggingface/, cellpose/); containers see it at WEIGHTS_IN_IMAGE

    def command(self, engineArgs, inputs=(), outputDir=None, gpuIds=(), threads=None) -> EngineCall:
        """The command that runs ``cryodiffseg <engineArgs>``.

        :param engineArgs: engine words, e.g. ["segment", tomogram, "--model", folder, "--out", folder]
        :param inputs: absolute paths (files or folders) the engine reads, as written in engineArgs
        :param outputDir: absolute folder the engine writes
        :param gpuIds: GPUs this command may use; none means CPU only
        :param threads: CPU threads for the engine's numerical libraries (None: their default)
        """
        environment = {}
        if threads:
            environment["OMP_NUM_THREADS"] = str(threads)
            environment["MKL_NUM_THREADS"] = str(threads)
        gpus = ",".join(str(gpu) for gpu in gpuIds)
        if self.kind == LOCAL:
            environment["CUDA_VISIBLE_DEVICES"] = gpus  # empty hides every GPU: the engine runs on the CPU
            if self.weights:
                environment.update(weightsEnvironment(self.weights))
            return EngineCall(_join(self._localPrefix(environment)), _join(engineArgs))
        if self.kind in (DOCKER, PODMAN):
            return EngineCall(self.kind, _join([*self._ociRun(inputs, outputDir, gpuIds, environment), *engineArgs]))
        if self.kind == APPTAINER:
            if gpuIds:  # --nv shows every GPU of the node: keep this step's
                environment["CUDA_VISIBLE_DEVICES"] = gpus
            return EngineCall(_quote(apptainerProgram() or APPTAINER),
                              _join([*self._apptainerExec(inputs, outputDir, gpuIds, environment), *engineArgs]))
        raise ValueError(f"Unknown runtime '{self.kind}': choose one of {', '.join(RUNTIMES)}.")

    def _localPrefix(self, environment):
        words = ["env"]
        for name in SCIPION_PYTHON_VARIABLES:
            words += ["-u", name]
        return words + [f"{name}={value}" for name, value in environment.items()] + [self.engine]

    def _ociRun(self, inputs, outputDir, gpuIds, environment):
        words = ["run", "--rm", "--network", "none"]
        # SELinux hosts would refuse the binds; relabelling (:z) would change the labels of the user's own files.
        words += ["--security-opt", "label=disable"]
        words += ["--no-healthcheck"]  # the image's health check is for long-running containers, not one engine run
        words += self._ociUser()
        if self.kind == DOCKER and gpuIds:
            words += ["--gpus", '"device=' + ",".join(str(gpu) for gpu in gpuIds) + '"']  # quoted: a CSV value
        elif self.kind == PODMAN:
            words += [word for gpu in gpuIds for word in ("--device", f"nvidia.com/gpu={gpu}")]  # CDI names
        for name, value in {"HOME": HOME_IN_CONTAINER, **environment}.items():
            words += ["--env", f"{name}={value}"]
        for source, target in self._bindings(inputs):
            words += ["--volume", f"{source}:{target}:ro"]
        if outputDir:
            words += ["--volume", f"{_bindable(outputDir)}:{_bindable(outputDir)}", "--workdir", outputDir]
        words += shlex.split(self.extraArgs)
        return words + ["--entrypoint", ENGINE_IN_IMAGE, self.image]

    def _ociUser(self):
        """Options that make the engine run as the calling user, so that its files belong to that user."""
        user = ["--user", f"{os.getuid()}:{os.getgid()}"]
        if self.kind == PODMAN and os.getuid() != 0:
            # Rootless podman maps container ids to subordinate ones: keep-id maps the user to itself, and --user
            # runs as it (keep-id alone still runs the image's own user).
            return ["--userns", "keep-id", *user]
        return user

    def _apptainerExec(self, inputs, outputDir, gpuIds, environment):
        # --containall: no home, /tmp or environment of the host (also no Scipion PYTHONPATH); the calling user.
        words = ["exec", "--containall", "--cleanenv", "--net", "--network", "none"]
        if gpuIds:
            words.append("--nv")
        for name, value in environment.items():
            words += ["--env", f"{name}={value}"]
        for source, target in self._bindings(inputs):
            words += ["--bind", f"{source}:{target}:ro"]
        if outputDir:
            words += ["--bind", f"{_bindable(outputDir)}:{_bindable(outputDir)}", "--pwd", outputDir]
        words += shlex.split(self.extraArgs)
        return words + [self.image, ENGINE_IN_IMAGE]

    def _bindings(self, inputs):
        """(real location, path in the container) of each input once, then of the weights folder."""
        bindings = {}
        for path in inputs:
            bindings.setdefault(_bindable(path), _bindable(os.path.realpath(path)))
        pairs = [(real, path) for path, real in bindings.items()]
        if self.weights:
            pairs.append((_bindable(os.path.realpath(self.weights)), WEIGHTS_IN_IMAGE))
        return pairs

    def problems(self):
        """What is missing for this runtime to run the engine, as messages naming the variable to fix."""
        if self.kind not in RUNTIMES:
            return [f"CRYODIFFSEG_RUNTIME is '{self.kind}': choose one of {', '.join(RUNTIMES)}."]
        errors = []
        if self.weights and not os.path.isdir(self.weights):
            errors.append(f"CRYODIFFSEG_WEIGHTS: the weights folder '{self.weights}' does not exist.")
        if self.kind == LOCAL:
            if not isExecutable(self.engine):
                errors.append(f"CRYODIFFSEG_ENGINE: '{self.engine}' is not an executable cryodiffseg command. Install "
                              f"the engine (scipion3 installb cryodiffseg) or set CRYODIFFSEG_ENGINE to the "
                              f"cryodiffseg command of an existing installation, e.g. "
                              f"/opt/cryodiffseg/venv/bin/cryodiffseg.")
            return errors
        program = apptainerProgram() if self.kind == APPTAINER else shutil.which(self.kind)
        if not program:
            names = "apptainer or singularity" if self.kind == APPTAINER else self.kind
            errors.append(f"CRYODIFFSEG_RUNTIME is '{self.kind}' but {names} is not on the PATH.")
        if not self.image:
            errors.append("CRYODIFFSEG_IMAGE is empty: name the engine image (a .sif file for apptainer).")
        elif self.kind == APPTAINER:
            if not os.path.isfile(self.image):
                errors.append(f"CRYODIFFSEG_IMAGE: the apptainer image '{self.image}' does not exist.")
        elif program:
            errors += self._imageProblems(program)
        return errors

    def _imageProblems(self, program):
        """Whether docker / podman has the image locally (a run would otherwise try to pull it)."""
        try:
            result = subprocess.run([program, "image", "inspect", "--format", "{{.Id}}", self.image],
                                    capture_output=True, text=True, timeout=IMAGE_CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            return [f"CRYODIFFSEG_IMAGE: '{self.kind} image inspect {self.image}' did not answer within "
                    f"{IMAGE_CHECK_SECONDS} s."]
        if result.returncode == 0:
            return []
        detail = (result.stderr.strip().splitlines() or ["no detail"])[-1]
        return [f"CRYODIFFSEG_IMAGE: {self.kind} has no image '{self.image}' ({detail}). Build it from the "
                f"Dockerfile of cryodiffseg or pull it (scipion3 installb cryodiffseg)."]


def apptainerProgram():
    """apptainer, or its predecessor singularity, if either is installed."""
    return shutil.which(APPTAINER) or shutil.which("singularity")


def isExecutable(command):
    """True for an executable file path, or a command name found on the PATH."""
    if os.sep in command:
        return os.path.isfile(command) and os.access(command, os.X_OK)
    return shutil.which(command) is not None


def _bindable(path):
    """A path that a bind option can carry: ':' separates its fields and ',' separates apptainer's binds."""
    if ":" in path or "," in path:
        raise ValueError(f"Cannot bind '{path}' into the container: the path contains ':' or ','. Rename the "
                         f"file or folder, or use the local runtime.")
    return path


def _quote(word):
    return shlex.quote(str(word))


def _join(words):
    return " ".join(_quote(word) for word in words)
