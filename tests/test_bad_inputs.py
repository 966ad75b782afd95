"""The bad-input matrix: every way a facility's input can be broken, for every command it reaches.

Each case must exit 2 with exactly one line on stderr (``cryodiffseg <command>: error: ...``, no traceback),
leave no file under a final or a temporary name, and leave what an earlier run wrote untouched.
RELIABILITY.md reports this matrix; rerun it with ``.venv/bin/python -m pytest tests/test_bad_inputs.py -q``.
"""

import json
import os
import shutil
import subprocess

import mrcfile
import numpy as np
import pytest
import torch
from pseudolabel_folders import chain_phantom

from cryodiffseg.cli import main
from cryodiffseg.tomoio import temporary_path, write_mrc
from cryodiffseg.tomoio.atomic import remove_stale_temporaries

# Files an earlier run left in the output folder, under the names the commands write.
EARLIER = ("tomogram_membrane_mask.mrc", "tomogram_membrane_probability.mrc", "tomogram_particles.csv",
           "tomogram_pseudopoints.csv", "pseudolabels.json", "scores.json")


class _Hostile:
    """A pickle that would run a command when loaded without weights_only."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/cryodiffseg-pwned",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A phantom, its pseudo-label folder, a model trained for a few steps, and broken variants of each."""
    root = tmp_path_factory.mktemp("bad")
    data, _ = chain_phantom(root)
    assert main(["train", str(root / "pl"), "--out", str(root / "model"), "--iterations", "3", "--crop-size", "64",
                 "--picker-iterations", "3", "--device", "cpu"]) == 0
    model = root / "model"

    write_mrc(root / "flat.mrc", np.full((8, 32, 32), 3.0, np.float32), 10.0)  # constant
    (root / "folder.mrc").mkdir()
    (root / "binary.csv").write_bytes(bytes(range(256)) * 4)

    _variant(model, root / "m_list", lambda m: (m / "membranes" / "model.json").write_text("[1, 2]"))
    _variant(model, root / "m_arch", lambda m: _edit_record(m / "membranes" / "model.json", ("architecture", "channels"), [8, 16, 32, 64, 128]))
    _variant(model, root / "p_list", lambda m: (m / "particles" / "best" / "model.json").write_text("[1]"))
    _variant(model, root / "p_voxel0", lambda m: _edit_record(m / "particles" / "best" / "model.json", ("voxel_size_A",), 0))
    _variant(model, root / "p_arch", lambda m: _edit_record(m / "particles" / "best" / "model.json", ("architecture", "channels"), [8, 16]))
    states = {"membranes": "membranes/training_state/state.pt", "particles": "particles/state/training_state.pt"}
    for target, state in states.items():
        _variant(model, root / f"{target}_truncated", lambda m, s=state: _truncate(m / s))
        _variant(model, root / f"{target}_hostile", lambda m, s=state: torch.save({"step": _Hostile()}, m / s))
    for name, text in (("bb_text", "not JSON {"), ("bb_list", "[]")):
        (root / name / "unet").mkdir(parents=True)
        (root / name / "unet" / "config.json").write_text(text)
    shutil.copytree(root / "pl", root / "pl_empty")
    (root / "pl_empty" / "points.csv").write_text("x,y,z\n")
    return root, data


def _variant(model, folder, damage):
    shutil.copytree(model, folder)
    damage(folder)


def _edit_record(path, keys, value):
    record = json.loads(path.read_text())
    place = record
    for key in keys[:-1]:
        place = place[key]
    place[keys[-1]] = value
    path.write_text(json.dumps(record))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


TOMO, MODEL, PL = "{root}/data/tomogram.mrc", "{root}/model", "{root}/pl"
SEGMENT = ["segment", TOMO, "--model", MODEL, "--device", "cpu"]
PICK = ["pick", TOMO, "--model", MODEL, "--device", "cpu", "--heatmap"]
PSEUDOLABEL = ["pseudolabel", TOMO, "--slabs", "20-21"]
ATTENTION = PSEUDOLABEL + ["--membranes", "attention", "--backbone", "compact", "--device", "cpu"]
TRAIN = ["train", PL, "--iterations", "2", "--crop-size", "64", "--picker-iterations", "2", "--device", "cpu"]
EVALUATE = ["evaluate", "--points", "{root}/data/particles.csv", "--truth-points", "{root}/data/particles.csv", "--radius", "3"]


def _with(argv, old, new):
    return [new if word == old else word for word in argv]


# (id, argv without --out, a fragment of the expected message, the output folder: None for a fresh one with EARLIER files)
CASES = [
    # Item 6: malformed files
    ("backbone config not JSON / pseudolabel", _with(ATTENTION, "compact", "{root}/bb_text"), "not readable JSON", None),
    ("backbone config a list / pseudolabel", _with(ATTENTION, "compact", "{root}/bb_list"), "not hold a JSON object", None),
    ("model.json a list / segment", _with(SEGMENT, MODEL, "{root}/m_list"), "not a JSON object", None),
    ("model.json a list / pick", _with(PICK, MODEL, "{root}/p_list"), "not a JSON object", None),
    ("picker voxel size 0 / pick", _with(PICK, MODEL, "{root}/p_voxel0"), "between 0.5 and 1000 A", None),
    ("truncated training state / train membranes", TRAIN, "truncated", "membranes_truncated"),
    ("hostile training state / train membranes", TRAIN, "could run code", "membranes_hostile"),
    ("truncated training state / train particles", TRAIN + ["--targets", "particles"], "truncated", "particles_truncated"),
    ("hostile training state / train particles", TRAIN + ["--targets", "particles"], "could run code", "particles_hostile"),
    ("binary CSV as points / evaluate", _with(EVALUATE + ["--json", "{out}/scores.json"], "{root}/data/particles.csv", "{root}/binary.csv"),
     "not a text CSV", None),
    ("--json names a folder / evaluate", EVALUATE + ["--json", "{out}"], "--json names a folder", None),
    ("--voxel-size 1e9 / segment", SEGMENT + ["--voxel-size", "1e9"], "between 0.5 and 1000 A", None),
    ("--voxel-size 1e9 / pick", PICK + ["--voxel-size", "1e9"], "between 0.5 and 1000 A", None),
    ("--voxel-size 1e9 / pseudolabel", PSEUDOLABEL + ["--voxel-size", "1e9"], "between 0.5 and 1000 A", None),
    ("--tile-size 7 / pseudolabel", ATTENTION + ["--tile-size", "7"], "multiple of 8 px", None),
    ("--tile-size 8 (grid too coarse) / pseudolabel", ATTENTION + ["--tile-size", "8"], "attention grid", None),
    ("--threshold-block 4 / pseudolabel", PSEUDOLABEL + ["--threshold-block", "4"], "odd", None),
    ("--max-timestep=-1 / pseudolabel", ATTENTION + ["--max-timestep=-1"], "--max-timestep", None),
    ("--max-timestep 5000 / pseudolabel", ATTENTION + ["--max-timestep", "5000"], "backbone's 1000 timesteps", None),
    ("--diameter 0 / pseudolabel", ATTENTION + ["--diameter", "0"], "--diameter", None),
    ("--num-samples 0 / pseudolabel", ATTENTION + ["--num-samples", "0"], "--num-samples", None),
    ("--batch-size 0 / pseudolabel", ATTENTION + ["--batch-size", "0"], "--batch-size", None),
    ("--num-maps 0 / pseudolabel", ATTENTION + ["--num-maps", "0"], "--num-maps", None),
    ("--particle-diameter-nm 0 / train", TRAIN + ["--particle-diameter-nm", "0"], "--particle-diameter-nm", None),
    # Item 7
    ("constant volume / segment", _with(SEGMENT, TOMO, "{root}/flat.mrc"), "constant", None),
    ("constant volume / pick", _with(PICK, TOMO, "{root}/flat.mrc"), "constant", None),
    ("constant volume / pseudolabel", _with(PSEUDOLABEL, TOMO, "{root}/flat.mrc"), "constant", None),
    ("folder as tomogram / segment", _with(SEGMENT, TOMO, "{root}/folder.mrc"), "is a folder", None),
    ("folder as tomogram / pick", _with(PICK, TOMO, "{root}/folder.mrc"), "is a folder", None),
    ("folder as tomogram / pseudolabel", _with(PSEUDOLABEL, TOMO, "{root}/folder.mrc"), "is a folder", None),
    ("weights of another architecture / segment", _with(SEGMENT, MODEL, "{root}/m_arch"), "do not fit", None),
    ("weights of another architecture / pick", _with(PICK, MODEL, "{root}/p_arch"), "do not fit", None),
    ("no pseudo-points, before any training / train", _with(TRAIN, PL, "{root}/pl_empty"), "no pseudo-points", None),
]


def _run(argv):
    try:
        return main(argv)
    except SystemExit as stopped:  # argparse's refusals
        return stopped.code


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, fragment, out", [pytest.param(a, f, o, id=i) for i, a, f, o in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(world, tmp_path, capsys, argv, fragment, out):
    root, _ = world
    if out is None:
        out = tmp_path / "out"
        out.mkdir()
        for name in EARLIER:
            (out / name).write_text(f"earlier {name}")
    else:  # a model folder holding the damaged state: everything in it is an earlier output
        out = root / out
    before = _snapshot(out)
    words = [word.format(root=root, out=out) for word in argv]
    capsys.readouterr()
    assert _run(words + ["--out", str(out)] if words[0] != "evaluate" else words) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"cryodiffseg {words[0]}: error: ") and fragment in lines[0], lines[0]
    assert _snapshot(out) == before  # no new file, final or temporary, and the earlier ones unchanged
    assert not os.path.exists("/tmp/cryodiffseg-pwned")


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run_and_a_live_ones_are_not(tmp_path):
    final = tmp_path / "tomo_membrane_mask.mrc"
    stale = tmp_path / ".tomo_membrane_mask.mrc.ab_cd123.mrc"  # mkstemp's naming, nobody holds it
    stale.write_bytes(b"half")
    other = tmp_path / ".other_output.mrc.ab_cd123.mrc"
    other.write_bytes(b"not ours to judge")
    look_alike = tmp_path / ".tomo_membrane_mask.mrc.backup"
    look_alike.write_bytes(b"the user's")
    with temporary_path(final) as live:
        remove_stale_temporaries(final)
        assert live.exists()  # a concurrent run's file stays
        assert not stale.exists()
    assert not live.exists()
    assert other.exists() and look_alike.exists()


def test_segment_rerun_after_a_kill_leaves_no_temporary_files_and_no_probability_leaves_no_stale_map(world, tmp_path):
    root, data = world
    out = tmp_path / "seg"
    out.mkdir()
    killed = [out / ".tomogram_membrane_probability.mrc.k1ll3d_x.mrc", out / ".tomogram_membrane_mask.mrc.k1ll3d_y.mrc"]
    for path in killed:
        path.write_bytes(b"\0" * 4096)
    (out / "tomogram_membrane_probability.mrc").write_bytes(b"an older run's map")
    assert main(["segment", str(data["tomogram"]), "--model", str(root / "model"), "--out", str(out), "--device", "cpu",
                 "--no-probability"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tomogram_membrane_mask.mrc", "tomogram_membrane_segmentation.json"]
    record = json.loads((out / "tomogram_membrane_segmentation.json").read_text())
    assert set(record["outputs"]) == {"mask"}


def test_evaluate_reads_a_csv_with_a_byte_order_mark(world, tmp_path, capsys):
    root, data = world
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + data["particles"].read_bytes().replace(b"\n", b"\r\n"))
    assert main(["evaluate", "--points", str(excel), "--truth-points", str(data["particles"]), "--radius", "3", "--json", "-"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["points"]["f1"] == 1.0


def _small_tmpfs(path):
    """Mount a 1 MiB tmpfs at ``path``, or the reason it cannot be done here."""
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True, text=True)
    if mount.returncode:
        return (mount.stderr or mount.stdout).strip() or f"mount exited {mount.returncode}"
    return None


@pytest.mark.parametrize("command", [SEGMENT, PICK + ["--no-average"]], ids=["segment", "pick --heatmap"])
def test_a_full_disk_gives_one_line_and_leaves_nothing_on_it(world, tmp_path, capsys, command):
    root, _ = world
    disk = tmp_path / "disk"
    reason = _small_tmpfs(disk)
    if reason:
        print(f"skipped: a 1 MiB tmpfs cannot be mounted here ({reason})")
        pytest.skip(f"a 1 MiB tmpfs cannot be mounted here: {reason}")
    try:
        capsys.readouterr()
        # The 40 x 96 x 96 float32 map (1.4 MiB) does not fit: its blocks are refused when reserved.
        assert _run([word.format(root=root) for word in command] + ["--out", str(disk / "out")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "No space left on device" in err and "Traceback" not in err, err
        assert not [p for p in disk.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    with mrcfile.open(root / "data" / "tomogram.mrc") as tomogram:  # the input is untouched
        assert tomogram.data.shape == (40, 96, 96)


def test_every_option_a_message_advises_exists():
    """Advice such as "--no-resume" must name an option the user can actually give."""
    import argparse
    import re
    from pathlib import Path

    import cryodiffseg
    from cryodiffseg.cli import build_parser

    flags = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    foreign = {"--local-dir",  # the Hugging Face command's, in the offline download advice
               # the peers benchmark's command lines for other programs: venv, pip, MemBrain-seg and its timing script
               "--clear", "--disable-pip-version-check", "--no-test-time-augmentation", "--max-windows"}
    package = Path(cryodiffseg.__file__).parent
    advised = {flag for path in package.rglob("*.py") if "cli" not in path.parts
               for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", path.read_text())}
    assert advised - foreign <= flags, advised - foreign - flags
