"""The napari overlay script against the napari lines facilities have: 0.4 (the tomo plugin) and 0.5 on."""


def test_the_napari_overlay_names_the_outline_colour_as_each_napari_line_does():
    from cryodiffseg_scipion.viewers.napari_overlay import outlineKeyword

    assert outlineKeyword("0.4.19") == "edge_color"
    assert outlineKeyword("0.5.0") == "border_color" and outlineKeyword("0.9.2") == "border_color"
    assert outlineKeyword("1.0.0rc1") == "border_color"
