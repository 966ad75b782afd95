"""The protocol forms against the engine's command line: every option exposed, with the engine's default.

Reads `cryodiffseg <command> --help`, so a new or changed engine option fails here until the plugin follows.
"""

import os
import re
import subprocess

import unittest

from cryodiffseg_scipion.constants import DEFAULT_BACKBONE, DEFAULT_CELLPOSE_MODEL, ENGINE_VERSION
from cryodiffseg_scipion.protocols import (
    ProtCryoDiffSegPick,
    ProtCryoDiffSegPseudoLabels,
    ProtCryoDiffSegSegment,
    ProtCryoDiffSegTrain,
)
from cryodiffseg_scipion.protocols.protocol_inference import PICK_OPTIONS, SEGMENT_OPTIONS
from cryodiffseg_scipion.protocols.protocol_pseudolabel import PSEUDOLABEL_OPTIONS
from cryodiffseg_scipion.protocols.protocol_train import TRAIN_OPTIONS

from .support import ENGINE, engineEnvironment, requiresEngine

# Options the plugin sets itself rather than exposing as a form parameter, with why.
PLUGIN_SET = {
    "--slabs": "from the slabs form parameter, per tomogram",
    "--out": "the run's extra folder",
    "--voxel-size": "the tomograms' sampling rate in Scipion",
    "--device": "Scipion's GPU list",
    "--backbone": "form parameter, else CRYODIFFSEG_BACKBONE",
    "--backbone-config": "form parameter resolved to an absolute path",
    "--cellpose-model": "form parameter, else CRYODIFFSEG_CELLPOSE_MODEL",
    "--model": "the trained model object",
    "--targets": "the 'Train' choice",
    "--probability": "always on: the probability maps are an output",
    "--pieces": "always on: the membrane meshes are an output",
    "--resume": "always on: a continued run resumes the training where it stopped",
}
PLUGIN_DEFAULTS = {"--backbone": DEFAULT_BACKBONE, "--cellpose-model": DEFAULT_CELLPOSE_MODEL}


def engineDefaults(command):
    """{option: default text} from the engine's help (one option per block, wrapped lines joined)."""
    help_text = subprocess.run([ENGINE, command, "--help"], capture_output=True, text=True, check=True,
                               env={**engineEnvironment(), "COLUMNS": "1000"}).stdout
    blocks = re.split(r"\n(?=  -)", help_text.split("options:", 1)[1])
    defaults = {}
    for block in blocks:
        text = " ".join(block.split())
        flag = re.match(r"(?:-\w, )?(--[\w-]+)", text)
        if flag and flag.group(1) != "--help":
            found = re.findall(r"\(default: ([^)]*)\)", text)
            defaults[flag.group(1)] = found[-1] if found else None
    return defaults


def formDefault(protocol, name):
    """A form parameter's default as the engine would print it."""
    param = protocol.getParam(name)
    value = param.default.get()
    kind = type(param).__name__
    if value is None:
        return "automatic"
    if kind == "EnumParam":
        return param.choices[int(value)]
    if kind == "BooleanParam":
        return "on" if value == "True" else "off"
    return value


def sameValue(plugin, engine):
    try:
        return float(plugin) == float(engine)
    except ValueError:
        return plugin == engine


@requiresEngine
class TestEngineContract(unittest.TestCase):

    def test_every_engine_option_is_exposed_with_its_default(self):
        for command, protocolClass, options in [
            ("pseudolabel", ProtCryoDiffSegPseudoLabels, PSEUDOLABEL_OPTIONS),
            ("train", ProtCryoDiffSegTrain, TRAIN_OPTIONS),
            ("segment", ProtCryoDiffSegSegment, SEGMENT_OPTIONS),
            ("pick", ProtCryoDiffSegPick, PICK_OPTIONS),
        ]:
            with self.subTest(command=command):
                self.assertOptionsExposed(command, protocolClass, options)

    def assertOptionsExposed(self, command, protocolClass, options):
        engine = engineDefaults(command)
        protocol = protocolClass()
        exposed = dict((flag, name) for name, flag in options)
        flags = set(engine) - {"--no-" + flag[2:] for flag in engine}
        self.assertEqual(sorted(flags - set(exposed) - set(PLUGIN_SET)), [],
                         "engine options the plugin does not expose")
        self.assertEqual(sorted(set(exposed) - flags), [], "plugin options the engine does not know")
        for flag, name in exposed.items():
            if engine[flag] is not None:  # None: the engine's help states no default
                self.assertTrue(sameValue(formDefault(protocol, name), engine[flag]),
                                f"{name} ({flag}): plugin {formDefault(protocol, name)!r}, engine {engine[flag]!r}")
        for flag, value in PLUGIN_DEFAULTS.items():
            if flag in engine:
                self.assertEqual(engine[flag], value, f"{flag}: plugin {value!r}, engine {engine[flag]!r}")

    def test_engine_version_matches_the_plugin(self):
        version = subprocess.run([ENGINE, "--version"], capture_output=True, text=True, check=True,
                                 env=engineEnvironment()).stdout.split()[-1]
        self.assertEqual(version, ENGINE_VERSION, f"engine {version} at {os.path.realpath(ENGINE)}")
