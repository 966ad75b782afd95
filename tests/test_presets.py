"""Named presets: `paper` sets every setting the published method differs in; options given with it win."""

import pytest

from cryodiffseg.cli import build_parser
from cryodiffseg.cli.options import apply_options
from cryodiffseg.cli.pseudolabel import OPTIONS
from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.pipeline import PseudoLabelConfig, uses_attention
from cryodiffseg.pseudolabel.presets import apply_preset


def configured(*words):
    args = build_parser().parse_args(["pseudolabel", "t.mrc", "--slabs", "1", "--out", "o", *words])
    return apply_options(args, OPTIONS, apply_preset(PseudoLabelConfig(slabs="1"), args.preset))


def test_the_paper_preset_sets_the_published_method():
    paper = configured("--preset", "paper")
    assert (paper.membranes, paper.particles) == ("attention", "attention") and uses_attention(paper)
    assert paper.backbone.source == "CompVis/stable-diffusion-v1-4" and paper.backbone.dtype == "float32"
    assert paper.solver == "paper" and paper.paper.iterations == 2000 and paper.paper.reuse_probability == 0.9
    assert paper.direct.reuse_probability == 0.9  # --solver direct on top: the reference's layer weights
    assert paper.tiling == "quadrisect" and paper.masks.splitter == "cellpose" and paper.points.dedup_mode == "first"
    assert paper.points.integer_coordinates and not configured().points.integer_coordinates
    assert paper.tile_jpeg_quality == 95 and configured().tile_jpeg_quality == 0
    # the published values every configuration shares
    assert paper.canvas.n_maps == 10 and paper.canvas.min_ssim == 0.35 and paper.canvas.max_base_contours == 10
    assert paper.zconsistency.neighbour_agreement == 0.9 and paper.zconsistency.outlier_similarity == 0.8
    assert (paper.masks.blur_size, paper.masks.blur_sigma, paper.masks.threshold_block, paper.masks.threshold_offset) == (7, 1.5, 15, 3.0)
    assert paper.masks.instance_diameter == 10.0 and paper.masks.min_circularity == 0.95
    assert paper.points.crowding_distance == 32.0 and paper.points.min_membrane_distance == 10.0
    assert paper.preprocess.smoothing_sigma == 1.25 and not paper.preprocess.clahe


def test_the_default_preset_is_the_default_configuration():
    assert configured() == configured("--preset", "default") == PseudoLabelConfig(slabs="1")
    assert not uses_attention(configured())


def test_options_given_with_a_preset_win():
    paper = configured("--preset", "paper", "--backbone", "compact", "--solver", "direct", "--splitter", "watershed")
    assert paper.backbone.source == "compact" and paper.solver == "direct" and paper.masks.splitter == "watershed"
    assert paper.tiling == "quadrisect" and paper.direct.reuse_probability == 0.9  # the rest of the preset stays


def test_an_unknown_preset_is_refused():
    with pytest.raises(CryoDiffSegError, match="Unknown preset"):
        apply_preset(PseudoLabelConfig(slabs="1"), "fast")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pseudolabel", "t.mrc", "--slabs", "1", "--out", "o", "--preset", "fast"])
