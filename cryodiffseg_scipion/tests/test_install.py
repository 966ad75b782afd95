"""`scipion3 installb cryodiffseg` (runtime 'local'): the recipe Scipion runs, run here as scipion-app runs it (a
shell in the package folder, then its sentinel checked) into a temporary folder, with pip offline: no index,
only wheels gathered beforehand."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import pwem

from cryodiffseg_scipion import Plugin, engineInstallCommands, engineSource
from cryodiffseg_scipion.constants import (
    ENGINE_INSTALLED,
    ENGINE_VAR,
    ENGINE_VERSION,
    HOME_VAR,
    RUNTIME_VAR,
    TORCH_REQUIREMENT,
)
from cryodiffseg_scipion.runtime import LOCAL, Runtime


class PackageRecorder:
    """The Environment of scipion-app (not in Scipion's test environment): records addPackage calls."""

    def __init__(self):
        self.packages = []

    def addPackage(self, name, **kwargs):
        self.packages.append((name, kwargs))


class TestEngineInstall(unittest.TestCase):

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="cryodiffseg-install-")
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)

    def definedPackage(self):
        recorder = PackageRecorder()
        with mock.patch.dict(Plugin._vars, {RUNTIME_VAR: LOCAL}):
            Plugin.defineBinaries(recorder)
        ((name, options),) = recorder.packages
        return name, options, f"{name}-{options['version']}"  # the package folder in EM_ROOT

    def runRecipe(self, home, wheels):
        """The recipe's commands with pip offline (no index, only `wheels`); True when every sentinel exists."""
        offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        os.makedirs(home)
        for command, sentinel in engineInstallCommands():
            subprocess.run(command, shell=True, cwd=home, env=offline, timeout=3600)
        return all(os.path.exists(os.path.join(home, sentinel)) for _, sentinel in engineInstallCommands())

    def test_the_package_is_not_taken_for_the_installed_plugin(self):
        name, options, folder = self.definedPackage()
        self.assertEqual(name, "cryodiffseg")
        self.assertEqual(options["commands"], engineInstallCommands())
        self.assertEqual(options["commands"][0][1], ENGINE_INSTALLED)
        # scipion-app reports a package installed when a site-packages entry starts with its folder name
        for path in filter(os.path.isdir, sys.path):
            self.assertEqual([entry for entry in os.listdir(path) if entry.startswith(folder)], [], path)

    def test_the_engine_command_defaults_to_where_the_recipe_installs_it(self):
        _, _, folder = self.definedPackage()
        unset = {key: value for key, value in os.environ.items() if key not in (HOME_VAR, ENGINE_VAR)}
        with mock.patch.dict(os.environ, unset, clear=True), mock.patch.dict(Plugin._vars):
            Plugin._defineVariables()
            self.assertEqual(Plugin.getVar(ENGINE_VAR),
                             os.path.join(pwem.Config.EM_ROOT, folder, "venv", "bin", "cryodiffseg"))

    def test_the_engine_comes_from_the_distribution_of_the_plugin(self):
        source = engineSource()
        self.assertTrue(source.endswith("[engine]"), source)
        self.assertTrue(os.path.exists(source[:-len("[engine]")]),
                        f"{source}: the plugin was not installed from a local folder or wheel")

    def test_a_plugin_installed_from_a_wheel_installs_the_engine_from_that_wheel(self):
        name = "cryodiffseg-0.1.0-py3-none-any.whl"
        recorded = json.dumps({"url": f"file:///my%20wheels/{name}", "archive_info": {}})  # pip's direct_url.json
        installed = mock.Mock(read_text=lambda file: recorded)
        plugin = os.path.join(self.folder, "site-packages", "cryodiffseg_scipion", "__init__.py")  # no setup.py beside
        with mock.patch("cryodiffseg_scipion.__file__", plugin), \
                mock.patch("cryodiffseg_scipion.metadata.distributions", return_value=[installed]):
            self.assertEqual(engineSource(), f"/my wheels/{name}[engine]")

    def test_a_failed_install_leaves_no_sentinel(self):
        empty = os.path.join(self.folder, "no wheels")
        os.makedirs(empty)
        self.assertFalse(self.runRecipe(os.path.join(self.folder, "home"), empty))

    def test_the_recipe_installs_a_working_engine_offline(self):
        source = engineSource()[:-len("[engine]")]
        built = os.path.join(source, "build")  # pip builds a source tree in place: leave the tree as found
        if os.path.isdir(source) and not os.path.exists(built):
            self.addCleanup(shutil.rmtree, built, ignore_errors=True)
        wheels = os.path.join(self.folder, "wheels")
        gathered = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheels,
                                   TORCH_REQUIREMENT, engineSource(), "setuptools", "wheel"],
                                  capture_output=True, text=True, timeout=3600)
        self.assertEqual(gathered.returncode, 0, "gathering the wheels needs the package index once:\n"
                         + gathered.stderr[-3000:])
        home = os.path.join(self.folder, "cryodiffseg-engine")
        self.assertTrue(self.runRecipe(home, wheels), "the recipe did not finish")
        engine = os.path.join(home, "venv", "bin", "cryodiffseg")
        version = subprocess.run([engine, "--version"], capture_output=True, text=True, check=True).stdout
        self.assertEqual(version.split(), ["cryodiffseg", ENGINE_VERSION])
        torch = subprocess.run([os.path.join(home, "venv", "bin", "python"), "-c",
                                "import torch; print(torch.__version__)"], capture_output=True, text=True, check=True)
        self.assertEqual(torch.stdout.strip().split("+")[0], TORCH_REQUIREMENT.split("==")[1])
        self.assertEqual(Runtime(LOCAL, engine=engine).problems(), [])
