"""The engine command lines of each runtime, and the translation of slabs and engine files (no Scipion project)."""

import os
import shlex
import stat

import pytest

from cryodiffseg_scipion.convert import SlabError, findOutput, parseSlabs, readPoints, slabSlices
from cryodiffseg_scipion.runtime import APPTAINER, DOCKER, LOCAL, PODMAN, Runtime

TRICKY = "/data/my project/TS 01 $HOME `x` 100%.mrc"  # spaces, shell expansions and a percent sign


def words(call):
    """The argv a POSIX shell makes of the command (environment assignments included)."""
    return shlex.split(str(call))


def test_local_quotes_every_word_and_selects_the_gpus():
    call = Runtime(LOCAL, engine="/opt/cds env/bin/cryodiffseg").command(
        ["segment", TRICKY, "--out", "/out dir"], gpuIds=[2, 3], threads=4)
    assert words(call) == ["OMP_NUM_THREADS=4", "MKL_NUM_THREADS=4", "CUDA_VISIBLE_DEVICES=2,3",
                           "/opt/cds env/bin/cryodiffseg", "segment", TRICKY, "--out", "/out dir"]
    assert "%(GPU)s" not in str(call)  # runJob formats '%' only when this placeholder is present


def test_local_without_gpus_hides_them():
    call = Runtime(LOCAL, engine="cryodiffseg").command(["pick", "t.mrc"])
    assert words(call)[:2] == ["CUDA_VISIBLE_DEVICES=", "cryodiffseg"]


def test_docker_binds_real_paths_read_only_at_the_given_paths(tmp_path):
    real = tmp_path / "real.mrc"
    real.write_bytes(b"")
    link = tmp_path / "Runs" / "TS_01.mrc"
    link.parent.mkdir()
    link.symlink_to(real)
    out = str(tmp_path / "out")
    call = Runtime(DOCKER, image="cryodiffseg:0.1.0", extraArgs="--shm-size 8g").command(
        ["segment", str(link), "--out", out], inputs=[str(link), str(link)], outputDir=out, gpuIds=[1], threads=2)
    argv = words(call)
    assert argv[:5] == ["docker", "run", "--rm", "--network", "none"]
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert argv[argv.index("--gpus") + 1] == '"device=1"'
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "--volume"]
    assert volumes == [f"{real}:{link}:ro", f"{out}:{out}"]  # each input once, symlink resolved
    assert argv[argv.index("--workdir") + 1] == out
    assert "OMP_NUM_THREADS=2" in argv and "--shm-size" in argv
    entry = argv.index("--entrypoint")
    assert argv[entry:entry + 3] == ["--entrypoint", "cryodiffseg", "cryodiffseg:0.1.0"]
    assert argv[entry + 3:] == ["segment", str(link), "--out", out]


def test_podman_keeps_the_user_and_names_gpus_by_cdi():
    argv = words(Runtime(PODMAN, image="img").command(["pick"], outputDir="/o", gpuIds=[0, 2]))
    assert argv[0] == "podman" and "--userns" in argv and "--user" not in argv
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--device"] == ["nvidia.com/gpu=0",
                                                                                  "nvidia.com/gpu=2"]


def test_apptainer_uses_nv_and_visible_devices(monkeypatch):
    monkeypatch.setattr("cryodiffseg_scipion.runtime.apptainerProgram", lambda: "/usr/bin/apptainer")
    argv = words(Runtime(APPTAINER, image="/images/cds.sif").command(["pick", "t.mrc"], inputs=["/d/t.mrc"],
                                                                     outputDir="/o", gpuIds=[3]))
    assert argv[:2] == ["/usr/bin/apptainer", "exec"]
    assert "--nv" in argv and "CUDA_VISIBLE_DEVICES=3" in argv
    assert argv[argv.index("/images/cds.sif") + 1:] == ["cryodiffseg", "pick", "t.mrc"]


def test_problems_name_the_variable_to_fix(tmp_path):
    assert "CRYODIFFSEG_ENGINE" in Runtime(LOCAL, engine=str(tmp_path / "missing")).problems()[0]
    engine = tmp_path / "cryodiffseg"
    engine.write_text("#!/bin/sh\n")
    engine.chmod(engine.stat().st_mode | stat.S_IXUSR)
    assert Runtime(LOCAL, engine=str(engine)).problems() == []
    assert "CRYODIFFSEG_RUNTIME" in Runtime("singularity-ce").problems()[0]
    assert any("CRYODIFFSEG_IMAGE" in problem for problem in Runtime(DOCKER, image="").problems())
    assert any("does not exist" in problem for problem in Runtime(APPTAINER, image=str(tmp_path / "x.sif")).problems())


def test_unknown_runtime_builds_no_command():
    with pytest.raises(ValueError, match="Unknown runtime"):
        Runtime("kubernetes").command(["pick"])


def test_slabs_per_tomogram():
    assert parseSlabs("TS_0008: 201-298; TS_0010: 100-140, 150\nTS_0011:3:5") == {
        "TS_0008": "201-298", "TS_0010": "100-140,150", "TS_0011": "3:5"}
    assert slabSlices("3-5,8,10:12") == [3, 4, 5, 8, 10, 11]


@pytest.mark.parametrize("text, message", [
    ("TS_01 5-7", "is not 'TSID: RANGES'"),
    ("TS_01: 5-7; TS_01: 9", "given twice"),
    ("TS_01: five", "is not a z range"),
    ("TS_01: 7-5", "empty z range"),
    ("TS_01: 4:4", "empty z range"),
])
def test_bad_slabs_say_what_is_wrong(text, message):
    with pytest.raises(SlabError, match=message):
        parseSlabs(text)


def test_engine_points_and_outputs(tmp_path):
    (tmp_path / "TS_01_particles.csv").write_text("x,y,z,score\n1.5,2,3,0.9\n")
    (tmp_path / "pseudo.csv").write_text("x,y,z\n4,5,6\n")
    assert readPoints(findOutput(str(tmp_path), "_particles.csv")) == [(1.5, 2.0, 3.0, 0.9)]
    assert readPoints(str(tmp_path / "pseudo.csv")) == [(4.0, 5.0, 6.0, None)]
    with pytest.raises(FileNotFoundError):
        findOutput(str(tmp_path), "_membrane_mask.mrc")
