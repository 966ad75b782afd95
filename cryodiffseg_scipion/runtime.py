"""Where the engine runs: on this machine (``local``) or inside the engine image (docker, podman, apptainer).

Scipion's ``runJob`` hands a single string to ``/bin/sh`` (also inside queue job scripts), so every word
built here is shell-quoted. Containers see each input at the path the engine is given, bound read-only
from its real location (Scipion's imported tomograms are symlinks the container could not follow), and
the output folder bound read-write. This module imports nothing from Scipion so it can be tested alone.
"""

import os
import shlex
import shutil
from dataclasses import dataclass

LOCAL = "local"
DOCKER = "docker"
PODMAN = "podman"
APPTAINER = "apptainer"
RUNTIMES = (LOCAL, DOCKER, PODMAN, APPTAINER)

ENGINE_IN_IMAGE = "cryodiffseg"  # the engine's command on the image's PATH


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
            assignments = [f"{name}={shlex.quote(value)}" for name, value in environment.items()]
            return EngineCall(" ".join(assignments + [shlex.quote(self.engine)]), _join(engineArgs))
        if self.kind in (DOCKER, PODMAN):
            return EngineCall(self.kind, _join(self._ociRun(inputs, outputDir, gpuIds, environment)) + " "
                              + _join(engineArgs))
        if self.kind == APPTAINER:
            if gpuIds:
                environment["CUDA_VISIBLE_DEVICES"] = gpus
            return EngineCall(apptainerProgram() or APPTAINER,
                              _join(self._apptainerExec(inputs, outputDir, gpuIds, environment)) + " "
                              + _join(engineArgs))
        raise ValueError(f"Unknown runtime '{self.kind}': choose one of {', '.join(RUNTIMES)}.")

    def _ociRun(self, inputs, outputDir, gpuIds, environment):
        gpus = ",".join(str(gpu) for gpu in gpuIds)
        words = ["run", "--rm", "--network", "none"]
        # Files written in the project must belong to the user who runs Scipion.
        words += ["--userns", "keep-id"] if self.kind == PODMAN else ["--user", f"{os.getuid()}:{os.getgid()}"]
        if gpuIds and self.kind == DOCKER:
            words += ["--gpus", f'"device={gpus}"']
        elif gpuIds:  # podman: the GPUs by their CDI names
            for gpu in gpuIds:
                words += ["--device", f"nvidia.com/gpu={gpu}"]
        for name, value in {"HOME": "/tmp", **environment}.items():
            words += ["--env", f"{name}={value}"]
        for source, target in _bindings(inputs):
            words += ["--volume", f"{source}:{target}:ro"]
        if outputDir:
            words += ["--volume", f"{outputDir}:{outputDir}", "--workdir", outputDir]
        words += shlex.split(self.extraArgs)
        return words + ["--entrypoint", ENGINE_IN_IMAGE, self.image]

    def _apptainerExec(self, inputs, outputDir, gpuIds, environment):
        # Apptainer has no network namespace without privileges; the image must hold what it needs.
        words = ["exec", "--containall", "--cleanenv"]
        if gpuIds:
            words.append("--nv")
        for name, value in environment.items():
            words += ["--env", f"{name}={value}"]
        for source, target in _bindings(inputs):
            words += ["--bind", f"{source}:{target}:ro"]
        if outputDir:
            words += ["--bind", f"{outputDir}:{outputDir}", "--pwd", outputDir]
        words += shlex.split(self.extraArgs)
        return words + [self.image, ENGINE_IN_IMAGE]

    def problems(self):
        """What is missing for this runtime to run the engine, as messages naming the variable to fix."""
        if self.kind not in RUNTIMES:
            return [f"CRYODIFFSEG_RUNTIME is '{self.kind}': choose one of {', '.join(RUNTIMES)}."]
        if self.kind == LOCAL:
            if not isExecutable(self.engine):
                return [f"CRYODIFFSEG_ENGINE: '{self.engine}' is not an executable cryodiffseg command. Install the "
                        f"engine (scipion3 installb cryodiffseg) or set CRYODIFFSEG_ENGINE to the cryodiffseg "
                        f"command of an existing installation, e.g. /opt/cryodiffseg/venv/bin/cryodiffseg."]
            return []
        errors = []
        program = apptainerProgram() if self.kind == APPTAINER else shutil.which(self.kind)
        if not program:
            names = "apptainer or singularity" if self.kind == APPTAINER else self.kind
            errors.append(f"CRYODIFFSEG_RUNTIME is '{self.kind}' but {names} is not on the PATH.")
        if not self.image:
            errors.append("CRYODIFFSEG_IMAGE is empty: name the engine image (a .sif file for apptainer).")
        elif self.kind == APPTAINER and not os.path.isfile(self.image):
            errors.append(f"CRYODIFFSEG_IMAGE: the apptainer image '{self.image}' does not exist.")
        return errors


def apptainerProgram():
    """apptainer, or its predecessor singularity, if either is installed."""
    return shutil.which(APPTAINER) or shutil.which("singularity")


def isExecutable(command):
    """True for an executable file path, or a command name found on the PATH."""
    if os.sep in command:
        return os.path.isfile(command) and os.access(command, os.X_OK)
    return shutil.which(command) is not None


def _bindings(paths):
    """(real location, path the engine is given) for each input, each path once."""
    seen = {}
    for path in paths:
        seen.setdefault(path, os.path.realpath(path))
    return [(real, path) for path, real in seen.items()]


def _join(words):
    return " ".join(shlex.quote(str(word)) for word in words)
