"""The napari overlay script against the napari lines facilities have (0.4 for the tomo plugin, 0.5 on), and its viewer."""

import os
import shutil
import sys
import tempfile
import unittest

from .support import realNapariOrSkip


class TestNapariOverlay(unittest.TestCase):

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="cryodiffseg-napari-")
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)

    def test_the_napari_overlay_names_the_outline_colour_as_each_napari_line_does(self):
        from cryodiffseg_scipion.viewers.napari_overlay import outlineKeyword

        self.assertEqual(outlineKeyword("0.4.19"), "edge_color")
        self.assertEqual(outlineKeyword("0.5.0"), "border_color")
        self.assertEqual(outlineKeyword("0.9.2"), "border_color")
        self.assertEqual(outlineKeyword("1.0.0rc1"), "border_color")

    def test_a_napari_that_fails_after_its_start_check_is_reported_from_the_gui_loop(self):
        from cryodiffseg_scipion.viewers import viewer_cryodiffseg as viewers

        late = f"{sys.executable} -c \"import sys, time; time.sleep(4); print('TypeError: add_points'); sys.exit(3)\""
        calls, shown = [], []

        class Loop:  # Tk's after(): the test runs the scheduled callbacks itself
            def after(self, ms, callback):
                calls.append(callback)

        log = os.path.join(self.folder, "napari.log")
        view = viewers.NapariView(late, log, Loop())
        view._showFailure = shown.append
        view.show()
        self.assertEqual(shown, [])  # still running after the start check: watched, not reported
        self.assertEqual(len(calls), 1)
        view.process.wait(timeout=30)
        calls.pop()()
        self.assertEqual(len(shown), 1)
        self.assertIn("TypeError: add_points", shown[0])
        self.assertIn("exited with code 3", shown[0])
        self.assertIn(log, shown[0])

    def test_a_napari_that_closes_cleanly_is_not_reported(self):
        from cryodiffseg_scipion.viewers.viewer_cryodiffseg import NapariView

        view = NapariView(f"{sys.executable} -c pass", os.path.join(self.folder, "napari.log"))
        self.assertIsNone(view.start())
        self.assertIsNone(view.failure())


SHAPE_ZYX = (8, 16, 24)
BLOCK = (slice(1, 5), slice(2, 6), slice(16, 20))  # low z, low y, high x: a flip along any axis moves it
BLOCK_CENTRE_ZYX = [2.5, 3.5, 17.5]


class TestRealNapari(unittest.TestCase):
    """The overlay in a real napari of the current line, on a virtual display: the layers it opens, and a napari
    that fails while the user waits. Skipped, saying why, without napari or Xvfb, unless CRYODIFFSEG_REQUIRE_NAPARI=1."""

    @classmethod
    def setUpClass(cls):
        cls.napari = realNapariOrSkip()
        cls.folder = tempfile.mkdtemp(prefix="cryodiffseg-real-napari-")
        cls.addClassCleanup(shutil.rmtree, cls.folder, ignore_errors=True)
        import mrcfile
        import numpy as np

        volume = np.zeros(SHAPE_ZYX, np.float32)
        volume[BLOCK] = 1.0
        cls.tomogram = os.path.join(cls.folder, "TS_01.mrc")
        cls.mask = os.path.join(cls.folder, "TS_01_membrane_mask.mrc")
        cls.probability = os.path.join(cls.folder, "TS_01_membrane_probability.mrc")
        for path, data in ((cls.tomogram, volume), (cls.mask, volume.astype(np.int8)), (cls.probability, volume / 2)):
            with mrcfile.new(path) as mrc:
                mrc.set_data(data)
        cls.points = os.path.join(cls.folder, "TS_01_particles.csv")
        with open(cls.points, "w") as handle:
            handle.write("x,y,z\n17.5,3.5,2.5\n")

    def test_the_overlay_lays_mask_probability_and_points_on_their_tomogram_y_up(self):
        import json
        import subprocess

        from cryodiffseg_scipion.viewers.viewer_cryodiffseg import NAPARI_SCRIPT

        command = (f"{self.napari} {NAPARI_SCRIPT} {self.tomogram} --probability {self.probability} "
                   f"--mask {self.mask} --points {self.points} --check")
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        report = json.loads(result.stdout.strip().splitlines()[-1])
        layers = [(layer["type"], layer["name"], layer["shape"]) for layer in report["layers"]]
        self.assertEqual(layers, [("image", "TS_01", list(SHAPE_ZYX)),
                                  ("image", "TS_01_membrane_probability", list(SHAPE_ZYX)),
                                  ("labels", "TS_01_membrane_mask", list(SHAPE_ZYX)),
                                  ("points", "TS_01_particles", [1, 3])])
        for layer in report["layers"]:  # every layer's content on the tomogram's block, in world coordinates
            self.assertEqual(layer["world_centroid"], BLOCK_CENTRE_ZYX, layer["name"])
        self.assertEqual(report["orientation2d"], ["up", "right"])  # y up, as MRC viewers and the QC figures

    def test_a_napari_that_fails_while_the_user_waits_is_reported(self):
        from cryodiffseg_scipion.viewers.viewer_cryodiffseg import NAPARI_SCRIPT, NapariView

        missing = os.path.join(self.folder, "gone_membrane_mask.mrc")
        calls, shown = [], []

        class Loop:  # Tk's after(): the test runs the scheduled callbacks itself
            def after(self, ms, callback):
                calls.append(callback)

        log = os.path.join(self.folder, "napari.log")
        view = NapariView(f"{self.napari} {NAPARI_SCRIPT} {self.tomogram} --mask {missing}", log, Loop())
        view._showFailure = shown.append
        view.show()
        view.process.wait(timeout=300)
        while calls and not shown:  # the GUI loop's checks (none if it failed within the start check)
            calls.pop()()
        self.assertEqual(len(shown), 1)
        self.assertIn(missing, shown[0])  # the script's own error, from the log
        self.assertRegex(shown[0], r"napari exited with code [1-9]")
        self.assertIn(log, shown[0])
