"""The plugin as Scipion discovers it: entry point, GUI tree, citations, logo, objects and viewers."""

import os

import pwem
import pyworkflow as pw
from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

import cryodiffseg_scipion


def test_registered_as_a_pyworkflow_plugin():
    assert "cryodiffseg_scipion" in pwem.Domain.getPlugins(), \
        "not registered: pip install -e <repository> into the Scipion environment"
    protocols = pwem.Domain.getProtocols()
    for name in ("ProtCryoDiffSegPseudoLabels", "ProtCryoDiffSegTrain", "ProtCryoDiffSegSegment",
                 "ProtCryoDiffSegPick"):
        assert protocols[name].getClassPackageName() == "cryodiffseg_scipion"
    assert "CryoDiffSegModel" in pwem.Domain.getObjects()
    assert "CryoDiffSegViewer" in pwem.Domain.getViewers()


def test_protocols_sit_under_segmentation_and_picking():
    tree = ProtocolTreeConfig.load(pwem.Domain, pw.Config.SCIPION_PROTOCOLS)["Tomography"]
    placed = {}

    def walk(node, path):
        for child in node.childs:
            if str(getattr(child, "value", "")).startswith("ProtCryoDiffSeg"):
                placed[str(child.value)] = path
            walk(child, path + [str(child.text)])

    walk(tree, [])
    assert placed == {
        "ProtCryoDiffSegPseudoLabels": ["Tomograms", "Segmentation"],
        "ProtCryoDiffSegTrain": ["Tomograms", "Segmentation"],
        "ProtCryoDiffSegSegment": ["Tomograms", "Segmentation"],
        "ProtCryoDiffSegPick": ["Particles", "Picking"],
    }


def test_citations_and_logo():
    plugin = pwem.Domain.getPluginModule("cryodiffseg_scipion")
    assert set(plugin._bibtex) == set(cryodiffseg_scipion._references)
    assert plugin._bibtex["Gandhi2025"]["doi"] == "10.1101/2025.06.25.661425"
    logo = os.path.join(os.path.dirname(cryodiffseg_scipion.__file__), cryodiffseg_scipion._logo)
    with open(logo, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
