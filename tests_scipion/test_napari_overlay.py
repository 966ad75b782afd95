"""The napari overlay script against the napari lines facilities have (0.4 for the tomo plugin, 0.5 on), and its viewer."""


def test_the_napari_overlay_names_the_outline_colour_as_each_napari_line_does():
    from cryodiffseg_scipion.viewers.napari_overlay import outlineKeyword

    assert outlineKeyword("0.4.19") == "edge_color"
    assert outlineKeyword("0.5.0") == "border_color" and outlineKeyword("0.9.2") == "border_color"
    assert outlineKeyword("1.0.0rc1") == "border_color"


def test_a_napari_that_fails_after_its_start_check_is_reported_from_the_gui_loop(tmp_path):
    import sys

    from cryodiffseg_scipion.viewers import viewer_cryodiffseg as viewers

    late = f"{sys.executable} -c \"import sys, time; time.sleep(4); print('TypeError: add_points'); sys.exit(3)\""
    calls, shown = [], []

    class Loop:  # Tk's after(): the test runs the scheduled callbacks itself
        def after(self, ms, callback):
            calls.append(callback)

    view = viewers.NapariView(late, str(tmp_path / "napari.log"), Loop())
    view._showFailure = shown.append
    view.show()
    assert shown == [] and len(calls) == 1  # still running after the start check: watched, not reported
    view.process.wait(timeout=30)
    calls.pop()()
    assert len(shown) == 1 and "TypeError: add_points" in shown[0] and "exited with code 3" in shown[0]
    assert str(tmp_path / "napari.log") in shown[0]


def test_a_napari_that_closes_cleanly_is_not_reported(tmp_path):
    import sys

    from cryodiffseg_scipion.viewers.viewer_cryodiffseg import NapariView

    view = NapariView(f"{sys.executable} -c pass", str(tmp_path / "napari.log"))
    assert view.start() is None and view.failure() is None
