"""The Methods text and citations of a pseudo-label run say what the engine recorded it ran."""

from cryodiffseg_scipion.protocols.protocol_pseudolabel import citationsFor, describeRun, summarizeRecords


def record(splitter, membranes="attention", particles="attention", backbone="compact"):
    return {"splitter": splitter, "membranes": {"source": membranes}, "particles": {"source": particles},
            "backbone": {"source": backbone}, "config": {"backbone": {"source": "auto"}}, "labelled_slices": [1, 2]}


def test_the_default_run_names_no_model_and_cites_only_the_method():
    default = record(None, membranes="sheets", particles="blobs", backbone=None)
    text = describeRun([default], 2, "1 tomogram", "direct", 4)
    assert "dark sheets" in text and "dark blobs" in text and "1 tomogram " in text
    assert "diffusion backbone" not in text and "CellPose" not in text and "watershed" not in text
    assert citationsFor([default]) == ["Gandhi2025"]


def test_watershed_run_cites_no_cellpose():
    text = describeRun([record("watershed")], 2, "1 tomogram", "direct", 4)
    assert "watershed" in text and "CellPose" not in text and "compact" in text
    assert citationsFor([record("watershed")]) == ["Gandhi2025", "Rombach2022"]


def test_cellpose_run_cites_cellpose():
    text = describeRun([record("cellpose")], 2, "1 tomogram", "paper", 4)
    assert "CellPose [Stringer2021]" in text and "non-round instances" in text and "dark sheets" not in text
    assert "Stringer2021" in citationsFor([record("cellpose")])


def test_mixed_runs_name_both_splitters_and_every_backbone():
    records = [record("cellpose", backbone="CompVis/stable-diffusion-v1-4"), record("watershed")]
    text = describeRun(records, 4, "2 tomograms", "direct", 4)
    assert "CellPose" in text and "watershed" in text
    assert "CompVis/stable-diffusion-v1-4" in text and "compact" in text


def test_an_older_record_without_backbone_membranes_or_particles_reads_as_the_attention_run():
    old = {"splitter": "watershed", "config": {"backbone": {"source": "compact"}}, "labelled_slices": [3]}
    text = describeRun([old], 1, "1 tomogram", "direct", 4)
    assert "compact" in text and "non-round instances" in text and "round instances of the canvases" in text


def test_the_summary_says_which_preset_evidence_and_backbone_ran():
    default = {**record(None, membranes="sheets", particles="blobs", backbone=None), "tomogram_name": "TS_01",
               "config": {"preset": "default", "backbone": {"source": "auto"}}}
    (line,) = summarizeRecords([default])
    assert line == "TS_01: preset default, membranes from sheets, points from blobs, no diffusion model."
    paper = {**record("cellpose", backbone="compact"), "tomogram_name": "TS_02", "config": {"preset": "paper"}}
    paper["backbone"]["reason"] = "as given"
    assert summarizeRecords([paper]) == ["TS_02: preset paper, membranes from attention, points from attention, backbone compact (as given)."]

