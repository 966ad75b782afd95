"""The slabs field: explicit z ranges per tomogram, or 'auto' for the engine's choice inside the sample."""

import unittest

from cryodiffseg_scipion.convert import AUTO, SlabError, parseSlabs


class TestAutomaticSlabs(unittest.TestCase):

    def test_auto_alone_gives_every_input_tomogram_an_automatic_slab(self):
        self.assertEqual(parseSlabs(" Auto\n", ["TS_01", "TS_02"]), {"TS_01": AUTO, "TS_02": AUTO})

    def test_auto_mixes_with_explicit_ranges_per_tomogram(self):
        self.assertEqual(parseSlabs("TS_01: auto; TS_02: 40-43, 50", ["TS_01", "TS_02"]),
                         {"TS_01": "auto", "TS_02": "40-43,50"})

    def test_a_misspelt_auto_is_still_refused_as_a_range(self):
        with self.assertRaisesRegex(SlabError, "is not a z range"):
            parseSlabs("TS_01: automatic", ["TS_01"])
