"""Scipion plugin for CryoDiffSeg: unsupervised membrane segmentation and particle picking in tomograms.

The plugin is an adapter: it turns Scipion objects into files, runs the ``cryodiffseg`` engine as an
external command through ``runJob`` (so queue systems and GPU lists apply) and registers what the engine
wrote. It never imports the engine or its machine-learning stack.
"""

import json
import os
import shlex
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse

import pwem
from pyworkflow import TOMO, VarTypes

from .constants import (
    BACKBONE_VAR,
    CELLPOSE_MODEL_VAR,
    DEFAULT_BACKBONE,
    DEFAULT_CELLPOSE_MODEL,
    DEFAULT_IMAGE,
    DISTRIBUTION,
    ENGINE_BINARY_VERSION,
    ENGINE_INSTALLED,
    ENGINE_VAR,
    ENGINE_VERSION,
    HOME_VAR,
    IMAGE_VAR,
    NAPARI_VAR,
    PRODUCT_NAME,
    RUNTIME_ARGS_VAR,
    RUNTIME_VAR,
    TORCH_REQUIREMENT,
    WEIGHTS_VAR,
)
from .runtime import DOCKER, LOCAL, PODMAN, RUNTIMES, Runtime

__version__ = "0.1.0"
_logo = "logo.png"
_references = ["Gandhi2025", "Rombach2022", "Stringer2021", "Ronneberger2015"]


def engineSource():
    """What pip installs the engine from: the distribution this plugin came in, where the engine package sits next
    to it: this source tree, else the folder or wheel pip installed the plugin from, else the package index."""
    tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(tree, "setup.py")):
        return f"{tree}[engine]"
    for distribution in metadata.distributions(name=DISTRIBUTION):
        recorded = distribution.read_text("direct_url.json")
        url = json.loads(recorded)["url"] if recorded else ""
        if url.startswith("file://"):
            return f"{unquote(urlparse(url).path)}[engine]"
    return f"{DISTRIBUTION}[engine]=={ENGINE_VERSION}"


def engineInstallCommands(python=sys.executable):
    """The runtime 'local' install, run in the package folder: a virtual environment of Scipion's Python, torch
    first and on its own (the engine's requirements then keep the build pip chose), the engine, and the sentinel
    once the installed command answers. [(shell command, sentinel)] as Environment.addPackage takes them."""
    steps = [f"{shlex.quote(python)} -m venv venv",
             f"venv/bin/pip install {shlex.quote(TORCH_REQUIREMENT)}",
             f"venv/bin/pip install {shlex.quote(engineSource())}",
             "venv/bin/cryodiffseg --version",
             f"touch {ENGINE_INSTALLED}"]
    return [(" && ".join(steps), ENGINE_INSTALLED)]


class Plugin(pwem.Plugin):
    _url = "https://github.com/cryodiffseg/cryodiffseg"
    _homeVar = HOME_VAR
    _processingField = [TOMO]

    @classmethod
    def _defineVariables(cls):
        cls._defineVar(RUNTIME_VAR, LOCAL, var_type=VarTypes.STRING,
                       description=f"Where the engine runs: {', '.join(RUNTIMES)}.")
        cls._defineEmVar(HOME_VAR, f"cryodiffseg-{ENGINE_BINARY_VERSION}", var_type=VarTypes.FOLDER,
                         description="Folder of the engine installed by 'scipion3 installb cryodiffseg'.")
        cls._defineVar(ENGINE_VAR, os.path.join(cls.getVar(HOME_VAR), "venv", "bin", "cryodiffseg"),
                       var_type=VarTypes.PATH,
                       description="Runtime 'local': the cryodiffseg command (e.g. the one of a virtual environment).")
        cls._defineVar(IMAGE_VAR, DEFAULT_IMAGE, var_type=VarTypes.STRING,
                       description="Runtimes docker and podman: the engine image; apptainer: its .sif file.")
        cls._defineVar(RUNTIME_ARGS_VAR, "", var_type=VarTypes.STRING,
                       description="Container runtimes: extra options for 'run'/'exec' (e.g. --shm-size 8g).")
        cls._defineVar(WEIGHTS_VAR, "", var_type=VarTypes.FOLDER,
                       description="A weights folder: a Hugging Face cache in huggingface/ and CellPose models in "
                                   "cellpose/. Containers see it (read-only) where the image looks for weights; "
                                   "empty: the weights baked into the image (local runtime: the usual caches).")
        cls._defineVar(BACKBONE_VAR, DEFAULT_BACKBONE, var_type=VarTypes.STRING,
                       description="Diffusion backbone for pseudo-labels: a Hugging Face hub id (default: the paper's "
                                   "Stable Diffusion v1.4, read from the weights folder offline), 'compact' (shipped "
                                   "with the engine: offline and fast on a CPU, but weaker; see the engine's "
                                   "BENCHMARKS.md), or a local diffusers folder / checkpoint file.")
        cls._defineVar(CELLPOSE_MODEL_VAR, DEFAULT_CELLPOSE_MODEL, var_type=VarTypes.STRING,
                       description="CellPose model name (weights in ~/.cellpose/models) or weights file.")
        cls._defineVar(NAPARI_VAR, "", var_type=VarTypes.STRING,
                       description="Command running a Python that has napari (e.g. /opt/napari/bin/python); "
                                   "empty: the napari environment of the tomo plugin.")

    def getName(self):
        """Scipion prefixes protocol labels (run names, form titles, menus) with this; the package name
        cryodiffseg_scipion is only there because the engine's package is cryodiffseg."""
        return PRODUCT_NAME

    @classmethod
    def getEnviron(cls):
        return None  # the engine command carries its own environment (see runtime.Runtime.command)

    @classmethod
    def getRuntime(cls) -> Runtime:
        return Runtime(kind=cls.getVar(RUNTIME_VAR), engine=cls.getVar(ENGINE_VAR), image=cls.getVar(IMAGE_VAR),
                       extraArgs=cls.getVar(RUNTIME_ARGS_VAR), weights=cls.getVar(WEIGHTS_VAR))

    @classmethod
    def getBackbone(cls):
        return cls.getVar(BACKBONE_VAR)

    @classmethod
    def getCellposeModel(cls):
        return cls.getVar(CELLPOSE_MODEL_VAR)

    @classmethod
    def getNapariPython(cls):
        """Shell words that start a Python with napari: CRYODIFFSEG_NAPARI, else the tomo plugin's environment."""
        configured = cls.getVar(NAPARI_VAR)
        if configured:
            return configured
        from tomo import Plugin as TomoPlugin
        from tomo.constants import NAPARI_ENV_ACTIVATION
        return f"{TomoPlugin.getCondaActivationCmd()} {TomoPlugin.getVar(NAPARI_ENV_ACTIVATION)} && python"

    @classmethod
    def validateInstallation(cls):
        return cls.getRuntime().problems()

    @classmethod
    def defineBinaries(cls, env):
        runtime = cls.getRuntime()
        if runtime.kind == LOCAL:
            env.addPackage("cryodiffseg", version=ENGINE_BINARY_VERSION, tar="void.tgz",
                           commands=engineInstallCommands(), default=True)
        elif runtime.kind in (DOCKER, PODMAN):
            pulled = "image_pulled"
            env.addPackage("cryodiffseg", version=ENGINE_BINARY_VERSION, tar="void.tgz",
                           commands=[(f"{runtime.kind} pull {runtime.image} && touch {pulled}", pulled)],
                           neededProgs=[runtime.kind], default=True)
        # apptainer: CRYODIFFSEG_IMAGE names a .sif file built by the facility (see the container guide).
