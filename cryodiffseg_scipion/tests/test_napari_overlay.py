"""The napari overlay script against the napari lines facilities have (0.4 for the tomo plugin, 0.5 on), and its viewer."""

import os
import shutil
import sys
import tempfile
import unittest


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
