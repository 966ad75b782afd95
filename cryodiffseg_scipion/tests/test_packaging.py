"""The plugin as Scipion discovers it: entry point, GUI tree, citations, logo, objects and viewers."""

import os
import unittest

import pwem
import pyworkflow as pw
from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

import cryodiffseg_scipion


class TestPackaging(unittest.TestCase):

    def test_registered_as_a_pyworkflow_plugin(self):
        self.assertIn("cryodiffseg_scipion", pwem.Domain.getPlugins(),
                      "not registered: pip install -e <repository> into the Scipion environment")
        protocols = pwem.Domain.getProtocols()
        for name in ("ProtCryoDiffSegPseudoLabels", "ProtCryoDiffSegTrain", "ProtCryoDiffSegSegment",
                     "ProtCryoDiffSegPick"):
            self.assertEqual(protocols[name].getClassPackageName(), "cryodiffseg_scipion", name)
        self.assertIn("CryoDiffSegModel", pwem.Domain.getObjects())
        self.assertIn("CryoDiffSegViewer", pwem.Domain.getViewers())

    def test_protocols_sit_under_segmentation_and_picking(self):
        tree = ProtocolTreeConfig.load(pwem.Domain, pw.Config.SCIPION_PROTOCOLS)["Tomography"]
        placed = {}

        def walk(node, path):
            for child in node.childs:
                if str(getattr(child, "value", "")).startswith("ProtCryoDiffSeg"):
                    placed[str(child.value)] = path
                walk(child, path + [str(child.text)])

        walk(tree, [])
        self.assertEqual(placed, {
            "ProtCryoDiffSegPseudoLabels": ["Tomograms", "Segmentation"],
            "ProtCryoDiffSegTrain": ["Tomograms", "Segmentation"],
            "ProtCryoDiffSegSegment": ["Tomograms", "Segmentation"],
            "ProtCryoDiffSegPick": ["Particles", "Picking"],
        })

    def test_citations_and_logo(self):
        plugin = pwem.Domain.getPluginModule("cryodiffseg_scipion")
        self.assertEqual(set(plugin._bibtex), set(cryodiffseg_scipion._references))
        self.assertEqual(plugin._bibtex["Gandhi2025"]["doi"], "10.1101/2025.06.25.661425")
        logo = os.path.join(os.path.dirname(cryodiffseg_scipion.__file__), cryodiffseg_scipion._logo)
        with open(logo, "rb") as handle:
            self.assertEqual(handle.read(8), b"\x89PNG\r\n\x1a\n")
