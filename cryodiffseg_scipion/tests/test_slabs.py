"""The slabs field: explicit z ranges per tomogram, or 'auto' for the engine's choice inside the sample."""

import unittest

from cryodiffseg_scipion.convert import AUTO, SlabError, parseSlabs, slabSlices


class TestAutomaticSlabs(unittest.TestCase):

    def test_auto_alone_gives_every_input_tomogram_an_automatic_slab(self):
        self.assertEqual(parseSlabs(" Auto\n", ["TS_01", "TS_02"]), {"TS_01": AUTO, "TS_02": AUTO})

    def test_auto_mixes_with_explicit_ranges_per_tomogram(self):
        self.assertEqual(parseSlabs("TS_01: auto; TS_02: 40-43, 50", ["TS_01", "TS_02"]),
                         {"TS_01": "auto", "TS_02": "40-43,50"})

    def test_a_misspelt_auto_is_still_refused_as_a_range(self):
        with self.assertRaisesRegex(SlabError, "is not a z range"):
            parseSlabs("TS_01: automatic", ["TS_01"])


class TestSlabsWizard(unittest.TestCase):
    """The form's wizard: it lists the tomograms and fills the field with slabs the form accepts."""

    def test_the_middle_slices_of_each_tomogram_thinner_ones_whole(self):
        from cryodiffseg_scipion.convert import proposeSlabs

        proposal = proposeSlabs({"TS_01": 300, "TS_02": 17, "TS_03": 3, "TS_04": 1})
        self.assertEqual(proposal, "TS_01: 148-151\nTS_02: 6-9\nTS_03: 0-2\nTS_04: 0")
        slabs = parseSlabs(proposal, ["TS_01", "TS_02", "TS_03", "TS_04"])
        self.assertEqual(slabSlices(slabs["TS_01"]), [148, 149, 150, 151])  # 148 slices below, 148 above
        self.assertEqual(slabSlices(slabs["TS_02"]), [6, 7, 8, 9])

    def test_automatic_proposes_auto_per_tomogram(self):
        from cryodiffseg_scipion.convert import proposeSlabs

        proposal = proposeSlabs({"TS_01": 300, "TS_02": 17}, automatic=True)
        self.assertEqual(proposal, "TS_01: auto\nTS_02: auto")
        self.assertEqual(parseSlabs(proposal, ["TS_01", "TS_02"]), {"TS_01": AUTO, "TS_02": AUTO})

    def test_the_dialog_lists_each_tsid_with_its_slices(self):
        from cryodiffseg_scipion.wizards import slabsMessage

        message = slabsMessage({"TS_01": 300, "TS_02": 17})
        self.assertIn("  TS_01: 300 slices (0-299)\n  TS_02: 17 slices (0-16)\n", message)

    def test_the_dialogs_answers_are_not_its_own_buttons_results(self):
        from pyworkflow.gui import dialog

        from cryodiffseg_scipion.wizards import AUTOMATIC, MIDDLE

        own = {getattr(dialog, name) for name in dir(dialog) if name.startswith("RESULT_")}
        self.assertEqual({MIDDLE, AUTOMATIC} & own, set())  # 'Automatic' must not read as Cancel
        self.assertNotEqual(MIDDLE, AUTOMATIC)

    def test_the_wizard_is_registered_for_the_slabs_field(self):
        import pwem
        from pyworkflow.wizard import DESKTOP_TKINTER

        from cryodiffseg_scipion.protocols import ProtCryoDiffSegPseudoLabels
        from cryodiffseg_scipion.wizards import CryoDiffSegSlabsWizard

        wizards = pwem.Domain.findWizards(ProtCryoDiffSegPseudoLabels(), DESKTOP_TKINTER)
        self.assertIs(wizards.get("slabs"), CryoDiffSegSlabsWizard)
