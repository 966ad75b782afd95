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
            self.assertEqual(protocols[name].getClassPackage().__name__, "cryodiffseg_scipion", name)
        self.assertIn("CryoDiffSegModel", pwem.Domain.getObjects())
        self.assertIn("CryoDiffSegViewer", pwem.Domain.getViewers())

    def test_protocols_sit_under_segmentation_and_picking_with_labels_the_tree_shows_whole(self):
        tree = ProtocolTreeConfig.load(pwem.Domain, pw.Config.SCIPION_PROTOCOLS)["Tomography"]
        placed = {}

        def walk(node, path):
            for child in node.childs:
                if str(getattr(child, "value", "")).startswith("ProtCryoDiffSeg"):
                    placed.setdefault(str(child.value), []).append(path + [str(child.text)])
                walk(child, path + [str(child.text)])

        walk(tree, [])
        group = ["Tomograms", "Segmentation", "cryodiffseg"]
        self.assertEqual(placed, {
            "ProtCryoDiffSegPseudoLabels": [group + ["pseudo-labels"]],
            "ProtCryoDiffSegTrain": [group + ["train"]],
            "ProtCryoDiffSegSegment": [group + ["segment"]],
            "ProtCryoDiffSegPick": [group + ["pick"], ["Particles", "Picking", "cryodiffseg pick"]],
        })
        # the tree's default width shows about 17 characters at these depths (Scipion 3.11 under Xvfb)
        for paths in placed.values():
            for path in paths:
                self.assertLessEqual(len(path[-1]), 16, path)

    def test_forms_run_names_and_the_compute_section_show_the_products_name(self):
        protocols = pwem.Domain.getProtocols()
        labels = {name: protocols[name].getClassLabel() for name in (
            "ProtCryoDiffSegPseudoLabels", "ProtCryoDiffSegTrain", "ProtCryoDiffSegSegment", "ProtCryoDiffSegPick")}
        self.assertEqual(labels, {"ProtCryoDiffSegPseudoLabels": "cryodiffseg - pseudo-labels",
                                  "ProtCryoDiffSegTrain": "cryodiffseg - train",
                                  "ProtCryoDiffSegSegment": "cryodiffseg - segment membranes",
                                  "ProtCryoDiffSegPick": "cryodiffseg - pick particles"})
        for name in labels:  # the form's '<package> compute' header
            self.assertEqual(protocols[name].getClassPackageName(), "cryodiffseg")
        self.assertLessEqual(max(map(len, labels.values())), 40)  # the runs graph cuts box texts at 40

    def test_citations_and_logo(self):
        plugin = pwem.Domain.getPluginModule("cryodiffseg_scipion")
        self.assertEqual(set(plugin._bibtex), set(cryodiffseg_scipion._references))
        self.assertEqual(plugin._bibtex["Gandhi2025"]["doi"], "10.1101/2025.06.25.661425")
        logo = os.path.join(os.path.dirname(cryodiffseg_scipion.__file__), cryodiffseg_scipion._logo)
        with open(logo, "rb") as handle:
            self.assertEqual(handle.read(8), b"\x89PNG\r\n\x1a\n")
