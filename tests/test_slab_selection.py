"""Automatic slab selection: never outside the sample, within the budget, covering different content,
reproducible, and usable by `pseudolabel --slabs auto` and `select-slabs` from the command line."""

import json
from pathlib import Path

import numpy as np
import pytest

from cryodiffseg.cli import build_parser, main, select_slabs as select_slabs_cli
from cryodiffseg.cli.options import _get, apply_options
from cryodiffseg.errors import CryoDiffSegError
from cryodiffseg.pseudolabel.slab_selection import (SlabSelectionConfig, choose_slabs, parse_budget, score_tomogram,
                                                    select_slabs, slab_count)
from cryodiffseg.pseudolabel.slabs import parse_slabs, slab_slices
from cryodiffseg.synthetic import PhantomConfig, generate_phantom
from cryodiffseg.tomoio import read_tomogram, write_mrc

VOXEL_A = 10.0


def _phantom(depth, seed, **overrides):
    config = PhantomConfig(shape=(depth, 96, 96), voxel_size_A=VOXEL_A, seed=seed, **overrides)
    return generate_phantom(config).tomogram.astype(np.float32)


def _membranes(depth, seed=1):
    """Membranes and filaments only: sheets, no particles."""
    return _phantom(depth, seed, n_vesicles=4, n_ribosomes=0, n_small_proteins=0, n_actin=0)


def _particles(depth, seed=2):
    """Particles only: blobs, no membranes."""
    return _phantom(depth, seed, membrane_sheet=False, n_vesicles=0, n_microtubules=0, n_actin=0, n_ribosomes=12,
                    n_small_proteins=60)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A lamella (z 10-41) thinner than the volume: noise outside it, zero and constant slices, slices
    half padded with zeros. Returns (path, slices that must never be chosen)."""
    sample = _phantom(32, 1)
    rng = np.random.default_rng(5)
    volume = rng.normal(float(sample.mean()), float(sample.std()), (56, 96, 96)).astype(np.float32)
    volume[10:42] = sample
    bad = set(range(0, 10)) | set(range(42, 56))
    volume[0:2] = 0.0  # padded
    volume[54:56] = 0.0
    volume[2] = 5.0  # constant
    volume[12, :, :48] = 0.0  # half padded, inside the lamella
    volume[30, :60] = 0.0
    bad |= {12, 30}
    path = write_mrc(tmp_path_factory.mktemp("damaged") / "damaged.mrc", volume, VOXEL_A)
    return path, bad


def test_outside_sample_padded_and_constant_slices_are_never_chosen(damaged):
    path, bad = damaged
    tomogram = read_tomogram(path)
    config = SlabSelectionConfig(slabs=20, slices_per_slab=2)  # more than fit: every usable place is taken
    selection = select_slabs([tomogram], config)
    chosen = slab_slices(selection.slabs_of(0))
    assert len(selection.chosen) >= 5
    assert not set(chosen) & bad
    reasons = selection.scores[0].reasons
    assert reasons[0] == reasons[1] == reasons[2] == "constant"
    assert reasons[12].startswith("padded") and reasons[30].startswith("padded")
    assert all(reasons[z] is not None and reasons[z].startswith("low contrast") for z in range(3, 10))
    assert all(reasons[z] is not None for z in range(42, 56))
    usable = [z for z, r in enumerate(reasons) if r is None]
    assert usable and min(usable) >= 10 and max(usable) <= 41 and len(usable) >= 20


def test_a_single_slab_lies_in_the_middle_of_the_sample(damaged):
    path, bad = damaged
    selection = select_slabs([read_tomogram(path)], SlabSelectionConfig(slabs=1, slices_per_slab=4))
    ((first, last),) = selection.slabs_of(0)
    assert last - first + 1 == 4 and not set(range(first, last + 1)) & bad


@pytest.mark.parametrize("budget, total, expected", [("2x4", 100, (2, 4)), ("3x1", 10, (3, 1)), ("10%", 200, (10, 2)),
                                                     ("10%x8", 200, (2, 8)), ("1%", 200, (1, 2)), ("0.1%", 100, (1, 1))])
def test_budget_forms(budget, total, expected):
    count, length = slab_count(parse_budget(budget), total)
    assert (count, length) == expected
    if "%" in budget:
        share = float(budget.split("%")[0]) / 100
        assert count * length <= max(1, share * total)


@pytest.mark.parametrize("budget", ["", "2", "2x", "x4", "0x4", "2x0", "0%", "150%", "-5%", "auto", "2x4x3"])
def test_unreadable_or_empty_budget_is_refused(budget):
    with pytest.raises(CryoDiffSegError):
        parse_budget(budget)


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    folder = tmp_path_factory.mktemp("halves")
    sheets, blobs = _membranes(24), _particles(24)
    return (write_mrc(folder / "sheets.mrc", sheets, VOXEL_A), write_mrc(folder / "blobs.mrc", blobs, VOXEL_A),
            write_mrc(folder / "stacked.mrc", np.concatenate([sheets, blobs]), VOXEL_A))


def test_the_budget_is_respected_and_slabs_never_touch(halves):
    tomograms = [read_tomogram(p) for p in halves[:2]]
    for budget in ("1x4", "3x3", "5x2", "10%", "4%x3"):
        config = parse_budget(budget)
        count, length = slab_count(config, 48)
        selection = select_slabs(tomograms, config)
        assert 1 <= len(selection.chosen) <= count
        assert len(selection.chosen) == count  # these tomograms have room for every slab
        for i in range(2):
            slabs = selection.slabs_of(i)
            assert all(last - first + 1 == length for first, last in slabs)
            assert all(b[0] - a[1] >= 2 for a, b in zip(slabs, slabs[1:]))  # a slice between: the spec keeps them apart
            if slabs:
                assert parse_slabs(selection.spec(i), 24) == slabs
        if config.share is not None:
            assert len(selection.chosen) * length <= config.share * 48


def test_two_different_tomograms_both_get_a_slab(halves):
    tomograms = [read_tomogram(p) for p in halves[:2]]
    for seed in (0, 1, 2):
        selection = select_slabs(tomograms, SlabSelectionConfig(slabs=2, slices_per_slab=4, seed=seed))
        assert sorted(c.tomogram for c in selection.chosen) == [0, 1]


def test_a_tomogram_with_two_different_halves_gets_a_slab_in_each(halves):
    stacked = read_tomogram(halves[2])
    selection = select_slabs([stacked], SlabSelectionConfig(slabs=2, slices_per_slab=4, position_weight=0.0))
    halves_hit = sorted(int(first >= 24) for first, last in selection.slabs_of(0))
    assert halves_hit == [0, 1]
    assert all(first >= 24 or last < 24 for first, last in selection.slabs_of(0))


def test_features_tell_sheets_from_blobs(halves):
    config = SlabSelectionConfig()
    sheets, blobs = (score_tomogram(read_tomogram(p), config) for p in halves[:2])
    stacked = score_tomogram(read_tomogram(halves[2]), config)
    ridge, blob = 4, 5  # FEATURES columns
    middle = slice(8, 16)
    assert np.nanmedian(stacked.features[8:16, ridge]) > np.nanmedian(stacked.features[32:40, ridge])
    assert np.nanmedian(stacked.features[32:40, blob]) > np.nanmedian(stacked.features[8:16, blob])
    assert np.nanmedian(sheets.features[middle, ridge]) > np.nanmedian(blobs.features[middle, ridge])


def test_the_same_seed_gives_the_same_slabs(halves):
    tomograms = [read_tomogram(p) for p in halves]
    config = SlabSelectionConfig(slabs=4, slices_per_slab=3, seed=7)
    first, again = select_slabs(tomograms, config), select_slabs(tomograms, config)
    assert [(c.tomogram, c.first, c.last, c.why) for c in first.chosen] == [(c.tomogram, c.first, c.last, c.why) for c in again.chosen]
    for a, b in zip(first.scores, again.scores):
        np.testing.assert_array_equal(a.features, b.features)
    scores = [score_tomogram(t, config, seed=7 + i) for i, t in enumerate(tomograms)]
    assert [(c.tomogram, c.first) for c in choose_slabs(scores, config).chosen] == [(c.tomogram, c.first) for c in first.chosen]


def test_select_slabs_command_prints_specs_pseudolabel_accepts_and_writes_its_record(halves, damaged, tmp_path, capsys):
    out = tmp_path / "selection"
    tomograms = [str(halves[0]), str(halves[1]), str(damaged[0])]
    assert main(["select-slabs", *tomograms, "--budget", "3x4", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    specs = dict(line.rsplit(": ", 1) for line in printed if line.split(": ", 1)[0] in tomograms)
    assert 1 <= len(specs) <= 3
    record = json.loads((out / "slab_selection.json").read_text())
    assert record["budget"]["slabs"] == 3 and record["budget"]["slices_per_slab"] == 4
    assert record["budget"]["chosen_slabs"] == len(record["order"]) == 3
    assert record["config"]["seed"] == 3
    depth = {"sheets": 24, "blobs": 24, "damaged": 56}
    total = 0
    for entry, path in zip(record["tomograms"], tomograms):
        assert Path(entry["path"]) == Path(path).resolve()
        assert len(entry["slices"]) == depth[entry["name"]]
        assert {"z", "usable", "reason", "quality", "contrast", "ridge", "blob"} <= set(entry["slices"][5])
        if entry["spec"]:
            assert specs[path] == entry["spec"]
            slabs = parse_slabs(entry["spec"], depth[entry["name"]])
            total += len(slab_slices(slabs))
            usable = {s["z"] for s in entry["slices"] if s["usable"]}
            assert set(slab_slices(slabs)) <= usable
        assert (out / entry["qc"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert total == 12
    lines = (out / "slabs.txt").read_text().splitlines()
    assert sorted(lines) == sorted(f"{e['name']}: {e['spec']}" for e in record["tomograms"] if e["spec"])
    assert all(o["why"] for o in record["order"])
    assert not list(out.rglob(".*"))  # no temporary files left


def test_select_slabs_without_out_only_prints(halves, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["select-slabs", str(halves[2]), "--budget", "2x2"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    path, spec = line.rsplit(": ", 1)
    assert path == str(halves[2]) and len(slab_slices(parse_slabs(spec, 48))) == 4
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def small_tomogram(tmp_path_factory):
    phantom = generate_phantom(PhantomConfig(shape=(12, 80, 96), voxel_size_A=VOXEL_A, seed=1))
    return write_mrc(tmp_path_factory.mktemp("small") / "tomogram.mrc", phantom.tomogram, VOXEL_A)


def test_pseudolabel_with_automatic_slabs_runs_end_to_end(small_tomogram, tmp_path, caplog):
    out = tmp_path / "pseudolabels"
    assert main(["pseudolabel", str(small_tomogram), "--slabs", "auto", "--out", str(out)]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    selection = manifest["slab_selection"]
    assert selection["automatic"] is True
    (a, b), (c, d) = manifest["slabs"]  # the default budget: 2 slabs of 2 slices that never touch
    assert b - a == d - c == 1 and c > b + 1 and 1 <= a and d <= 10  # never the reconstruction's first or last slice
    assert selection["spec"] == f"{a}-{b},{c}-{d}" == manifest["config"]["slabs"]
    assert manifest["labelled_slices"] == [a, b, c, d]
    assert selection["budget"]["slabs"] == 2 and selection["budget"]["slices_per_slab"] == 2
    assert f"Automatic slabs for tomogram: {a}-{b},{c}-{d}" in caplog.text
    assert selection["qc"] in manifest["outputs"]["qc"]
    assert (out / "qc" / selection["qc"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / manifest["outputs"]["membrane_mask"]).is_file()


def test_given_slabs_are_recorded_as_not_automatic(small_tomogram, tmp_path):
    out = tmp_path / "given"
    assert main(["pseudolabel", str(small_tomogram), "--slabs", "5-6", "--out", str(out)]) == 0
    manifest = json.loads((out / "pseudolabels.json").read_text())
    assert manifest["slab_selection"] is None and manifest["slabs"] == [[5, 6]]
    assert not list((out / "qc").glob("*_slab_selection.png"))


@pytest.fixture(scope="module")
def constant_tomogram(tmp_path_factory):
    return write_mrc(tmp_path_factory.mktemp("constant") / "flat.mrc", np.full((8, 32, 32), 3.0, np.float32), VOXEL_A)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "2x"], "Cannot read budget"),
        (["--budget", "0x4"], "at least one slab"),
        (["--budget", "200%"], "share of slices"),
        (["--budget", "1x500"], "do not fit in any tomogram"),
        (["missing.mrc"], "not found"),
        (["SMALL_AGAIN"], "share the name"),
        (["CONSTANT"], "no slice with structure"),
    ],
)
def test_bad_input_exits_2_with_one_line(small_tomogram, constant_tomogram, tmp_path, capsys, args, message):
    again = tmp_path / "copy"
    again.mkdir()
    (again / "tomogram.mrc").write_bytes(Path(small_tomogram).read_bytes())
    replaced = {"SMALL_AGAIN": str(again / "tomogram.mrc"), "CONSTANT": str(constant_tomogram)}
    words = [replaced.get(w, w) for w in args]
    tomos = [w for w in words if w.endswith(".mrc")]
    options = [w for w in words if not w.endswith(".mrc")]
    out = tmp_path / "out"
    code = main(["select-slabs", str(small_tomogram), *tomos, *options, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_pseudolabel_auto_with_a_constant_tomogram_is_refused(constant_tomogram, tmp_path, capsys):
    assert main(["pseudolabel", str(constant_tomogram), "--slabs", "auto", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "constant" in err[0]


def _option_cases():
    for option in select_slabs_cli.OPTIONS:
        yield pytest.param(option, id=option.flag)


@pytest.mark.parametrize("option", list(_option_cases()))
def test_each_select_slabs_option_sets_its_own_field_and_refuses_nan(option, capsys):
    defaults = SlabSelectionConfig()
    default = _get(defaults, option.field)
    value = default + 7 if isinstance(default, int) else (default + 0.01 if option.range.contains(default + 0.01) else default - 0.01)
    args = build_parser().parse_args(["select-slabs", "t.mrc", option.flag, str(value)])
    filled = apply_options(args, select_slabs_cli.OPTIONS, defaults)
    assert _get(filled, option.field) == pytest.approx(value)
    assert all(_get(filled, o.field) == _get(defaults, o.field) for o in select_slabs_cli.OPTIONS if o is not option)
    for word in ("nan", "-1"):
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(["select-slabs", "t.mrc", f"{option.flag}={word}"])
        assert stopped.value.code == 2
        assert option.flag in capsys.readouterr().err
