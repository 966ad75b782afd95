"""The Methods text and citations of a pseudo-label run say what the engine recorded it ran."""

import unittest

from cryodiffseg_scipion.protocols.protocol_pseudolabel import citationsFor, describeRun, summarizeRecords


def record(splitter, membranes="attention", particles="attention", backbone="compact"):
    return {"splitter": splitter, "membranes": {"source": membranes}, "particles": {"source": particles},
            "backbone": {"source": backbone}, "config": {"backbone": {"source": "auto"}}, "labelled_slices": [1, 2]}


class TestMethods(unittest.TestCase):

    def test_the_default_run_names_no_model_and_cites_only_the_method(self):
        default = record(None, membranes="sheets", particles="blobs", backbone=None)
        text = describeRun([default], 2, "1 tomogram", "direct", 4)
        for present in ("dark sheets", "dark blobs", "1 tomogram "):
            self.assertIn(present, text)
        for absent in ("diffusion backbone", "CellPose", "watershed"):
            self.assertNotIn(absent, text)
        self.assertEqual(citationsFor([default]), ["Gandhi2025"])

    def test_watershed_run_cites_no_cellpose(self):
        text = describeRun([record("watershed")], 2, "1 tomogram", "direct", 4)
        self.assertIn("watershed", text)
        self.assertNotIn("CellPose", text)
        self.assertIn("compact", text)
        self.assertEqual(citationsFor([record("watershed")]), ["Gandhi2025", "Rombach2022"])

    def test_cellpose_run_cites_cellpose(self):
        text = describeRun([record("cellpose")], 2, "1 tomogram", "paper", 4)
        self.assertIn("CellPose [Stringer2021]", text)
        self.assertIn("non-round instances", text)
        self.assertNotIn("dark sheets", text)
        self.assertIn("Stringer2021", citationsFor([record("cellpose")]))

    def test_mixed_runs_name_both_splitters_and_every_backbone(self):
        records = [record("cellpose", backbone="CompVis/stable-diffusion-v1-4"), record("watershed")]
        text = describeRun(records, 4, "2 tomograms", "direct", 4)
        for present in ("CellPose", "watershed", "CompVis/stable-diffusion-v1-4", "compact"):
            self.assertIn(present, text)

    def test_an_older_record_without_backbone_membranes_or_particles_reads_as_the_attention_run(self):
        old = {"splitter": "watershed", "config": {"backbone": {"source": "compact"}}, "labelled_slices": [3]}
        text = describeRun([old], 1, "1 tomogram", "direct", 4)
        for present in ("compact", "non-round instances", "round instances of the canvases"):
            self.assertIn(present, text)

    def test_the_summary_says_which_preset_evidence_and_backbone_ran(self):
        default = {**record(None, membranes="sheets", particles="blobs", backbone=None), "tomogram_name": "TS_01",
                   "config": {"preset": "default", "backbone": {"source": "auto"}}}
        (line,) = summarizeRecords([default])
        self.assertEqual(line, "TS_01: slices 1-2 (given), preset default, membranes from sheets, points from blobs, "
                               "no diffusion model.")
        paper = {**record("cellpose", backbone="compact"), "tomogram_name": "TS_02", "config": {"preset": "paper"},
                 "labelled_slices": [7, 8, 9, 10, 20], "slab_selection": {"order": []}}
        paper["backbone"]["reason"] = "as given"
        self.assertEqual(summarizeRecords([paper]), [
            "TS_02: slices 7-10,20 (chosen automatically), preset paper, membranes from attention, points from "
            "attention, backbone compact (as given)."])
