"""The engine command lines of each runtime, and the translation of slabs and engine files (no Scipion project)."""

import json
import os
import shlex
import stat
import subprocess

import pytest

from cryodiffseg_scipion.convert import SlabError, findOutput, parseSlabs, readPoints, slabSlices
from cryodiffseg_scipion.runtime import APPTAINER, DOCKER, LOCAL, PODMAN, Runtime

# Spaces, quotes, command substitution, a command separator, a glob and a percent sign.
HOSTILE = "TS 01 $(touch INJECTED); `touch INJECTED` 'it''s' \"q\" *100%.mrc"

RECORDER = """#!/bin/sh
# Records the argv it was given, one JSON string per line, then does what the real program would answer.
for word in "$@"; do printf '%s' "$word" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))'; done \
    > "$(dirname "$0")/$(basename "$0").argv"
exit "${FAKE_EXIT:-0}"
"""


def words(call):
    """The argv a POSIX shell makes of the command (environment assignments included)."""
    return shlex.split(str(call))


def optionValues(argv, option):
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


@pytest.fixture
def fakePrograms(tmp_path, monkeypatch):
    """docker, podman, apptainer that record their arguments, alone on the PATH; returns their folder."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("docker", "podman", "apptainer"):
        program = folder / name
        program.write_text(RECORDER)
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return folder


@pytest.fixture
def project(tmp_path):
    """A protocol step of a project with a hostile name: an imported tomogram (a link), a model, an output."""
    data = tmp_path / "user data"
    data.mkdir()
    real = data / HOSTILE
    real.write_bytes(b"")
    runs = tmp_path / "my project" / "Runs"
    link = runs / "000002_ProtImportTomograms" / "extra" / HOSTILE
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    model = runs / "000040_ProtCryoDiffSegTrain" / "extra" / "model"
    model.mkdir(parents=True)
    out = runs / "000061_ProtCryoDiffSegSegment" / "extra" / "TS 01"
    out.mkdir(parents=True)
    return {"real": str(real), "link": str(link), "model": str(model), "out": str(out)}


def segmentCall(runtime, project, gpuIds=(), threads=2):
    args = ["segment", project["link"], "--model", project["model"], "--out", project["out"]]
    return runtime.command(args, inputs=[project["link"], project["model"], project["link"]],
                           outputDir=project["out"], gpuIds=gpuIds, threads=threads)


def runThroughShell(call, programs, program):
    """Run the command line with /bin/sh as runJob does; the argv the fake program received."""
    subprocess.run(str(call), shell=True, check=True, cwd=programs)
    assert not (programs / "INJECTED").exists(), "a file name ran a command"
    with open(programs / f"{program}.argv") as handle:
        return [json.loads(line) for line in handle]


def test_local_quotes_every_word_and_selects_the_gpus():
    call = Runtime(LOCAL, engine="/opt/cds env/bin/cryodiffseg").command(
        ["segment", HOSTILE, "--out", "/out dir"], gpuIds=[2, 3], threads=4)
    assert words(call) == ["env", "-u", "PYTHONPATH", "-u", "PYTHONHOME", "OMP_NUM_THREADS=4", "MKL_NUM_THREADS=4",
                           "CUDA_VISIBLE_DEVICES=2,3", "/opt/cds env/bin/cryodiffseg", "segment", HOSTILE, "--out",
                           "/out dir"]
    assert "%(GPU)s" not in str(call)  # runJob formats '%' only when this placeholder is present


def test_local_without_gpus_hides_them_and_drops_scipion_python_path(tmp_path):
    call = Runtime(LOCAL, engine="cryodiffseg").command(["pick", "t.mrc"])
    assert words(call)[5:7] == ["CUDA_VISIBLE_DEVICES=", "cryodiffseg"]
    engine = tmp_path / "cryodiffseg"  # prints what the engine would see
    engine.write_text('#!/bin/sh\necho "PYTHONPATH=${PYTHONPATH-unset} CUDA=$CUDA_VISIBLE_DEVICES args=$*"\n')
    engine.chmod(0o755)
    call = Runtime(LOCAL, engine=str(engine)).command(["pick", "t.mrc"])
    shown = subprocess.run(str(call), shell=True, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": "/scipion/site-packages"}).stdout
    assert shown.strip() == "PYTHONPATH=unset CUDA= args=pick t.mrc"


def test_local_weights_folder_sets_the_caches():
    argv = words(Runtime(LOCAL, weights="/srv/weights").command(["pick"]))
    assert "HF_HOME=/srv/weights/huggingface" in argv
    assert "CELLPOSE_LOCAL_MODELS_PATH=/srv/weights/cellpose" in argv


def test_docker_command_line(fakePrograms, project, tmp_path):
    runtime = Runtime(DOCKER, image="cryodiffseg:0.1.0", extraArgs="--shm-size 8g", weights=str(tmp_path))
    call = segmentCall(runtime, project, gpuIds=[1, 3])
    assert call.program == "docker"
    argv = runThroughShell(call, fakePrograms, "docker")
    assert argv[:4] == ["run", "--rm", "--network", "none"]
    assert optionValues(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    assert optionValues(argv, "--gpus") == ['"device=1,3"'] and "--device" not in argv
    # each input once, read-only, from its real location (the link's target) at the path the engine is given
    assert optionValues(argv, "--volume") == [f"{project['real']}:{project['link']}:ro",
                                              f"{project['model']}:{project['model']}:ro",
                                              f"{tmp_path}:/opt/cryodiffseg/weights:ro",
                                              f"{project['out']}:{project['out']}"]
    assert optionValues(argv, "--workdir") == [project["out"]]
    assert optionValues(argv, "--env") == ["HOME=/tmp", "OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2"]
    assert "--shm-size" in argv
    entry = argv.index("--entrypoint")
    assert argv[entry:] == ["--entrypoint", "cryodiffseg", "cryodiffseg:0.1.0", "segment", project["link"],
                            "--model", project["model"], "--out", project["out"]]


def test_docker_without_gpus_selects_none(project):
    argv = words(segmentCall(Runtime(DOCKER, image="img"), project))
    assert "--gpus" not in argv and "--device" not in argv and "CUDA_VISIBLE_DEVICES" not in str(argv)


@pytest.mark.parametrize("uid, gid, user", [(1234, 100, ["--userns", "keep-id", "--user", "1234:100"]),
                                            (0, 0, ["--user", "0:0"])])
def test_podman_runs_as_the_calling_user(monkeypatch, project, uid, gid, user):
    """Rootless podman (a user) maps the user to itself with keep-id; rootful podman (root, as in CI) needs none."""
    monkeypatch.setattr("cryodiffseg_scipion.runtime.os.getuid", lambda: uid)
    monkeypatch.setattr("cryodiffseg_scipion.runtime.os.getgid", lambda: gid)
    argv = words(segmentCall(Runtime(PODMAN, image="localhost/cryodiffseg:0.1.0"), project))
    userOptions = argv[argv.index("--no-healthcheck") + 1:argv.index("--env")]
    assert userOptions == user


def test_podman_command_line(fakePrograms, project, tmp_path):
    call = segmentCall(Runtime(PODMAN, image="localhost/cryodiffseg:0.1.0"), project, gpuIds=[0, 2], threads=None)
    assert call.program == "podman"
    argv = runThroughShell(call, fakePrograms, "podman")
    assert argv[:4] == ["run", "--rm", "--network", "none"]
    assert optionValues(argv, "--device") == ["nvidia.com/gpu=0", "nvidia.com/gpu=2"] and "--gpus" not in argv
    assert optionValues(argv, "--env") == ["HOME=/tmp"]
    assert optionValues(argv, "--volume") == [f"{project['real']}:{project['link']}:ro",
                                              f"{project['model']}:{project['model']}:ro",
                                              f"{project['out']}:{project['out']}"]
    assert argv[argv.index("localhost/cryodiffseg:0.1.0") + 1:] == ["segment", project["link"], "--model",
                                                                   project["model"], "--out", project["out"]]


def test_apptainer_command_line(fakePrograms, project, tmp_path):
    call = segmentCall(Runtime(APPTAINER, image="/images/cds 0.1.sif", weights=str(tmp_path)), project, gpuIds=[3])
    assert call.program == shlex.quote(str(fakePrograms / "apptainer"))
    argv = runThroughShell(call, fakePrograms, "apptainer")
    assert argv[:6] == ["exec", "--containall", "--cleanenv", "--net", "--network", "none"]
    assert "--nv" in argv
    assert optionValues(argv, "--env") == ["OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2", "CUDA_VISIBLE_DEVICES=3"]
    assert optionValues(argv, "--bind") == [f"{project['real']}:{project['link']}:ro",
                                            f"{project['model']}:{project['model']}:ro",
                                            f"{tmp_path}:/opt/cryodiffseg/weights:ro",
                                            f"{project['out']}:{project['out']}"]
    assert optionValues(argv, "--pwd") == [project["out"]]
    assert argv[argv.index("/images/cds 0.1.sif") + 1:] == ["cryodiffseg", "segment", project["link"], "--model",
                                                           project["model"], "--out", project["out"]]


def test_apptainer_without_gpus_loads_no_driver(fakePrograms, project):
    argv = words(segmentCall(Runtime(APPTAINER, image="/images/cds.sif"), project))
    assert "--nv" not in argv and "CUDA_VISIBLE_DEVICES" not in str(argv)


@pytest.mark.parametrize("kind", [DOCKER, PODMAN, APPTAINER])
@pytest.mark.parametrize("name", ["TS:01.mrc", "TS,01.mrc"])
def test_paths_that_a_bind_cannot_carry_are_refused(kind, name):
    with pytest.raises(ValueError, match="contains ':' or ','"):
        Runtime(kind, image="img").command(["pick", f"/data/{name}"], inputs=[f"/data/{name}"], outputDir="/o")


def test_local_problems_name_the_variable_to_fix(tmp_path):
    assert "CRYODIFFSEG_ENGINE" in Runtime(LOCAL, engine=str(tmp_path / "missing")).problems()[0]
    engine = tmp_path / "cryodiffseg"
    engine.write_text("#!/bin/sh\n")
    engine.chmod(engine.stat().st_mode | stat.S_IXUSR)
    assert Runtime(LOCAL, engine=str(engine)).problems() == []
    assert "CRYODIFFSEG_RUNTIME" in Runtime("singularity-ce").problems()[0]
    assert Runtime(LOCAL, engine=str(engine), weights=str(tmp_path / "none")).problems() == [
        f"CRYODIFFSEG_WEIGHTS: the weights folder '{tmp_path / 'none'}' does not exist."]


@pytest.mark.parametrize("kind", [DOCKER, PODMAN, APPTAINER])
def test_missing_runtime_program(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    problems = Runtime(kind, image=str(tmp_path / "img.sif")).problems()
    assert any(f"CRYODIFFSEG_RUNTIME is '{kind}' but" in problem and "not on the PATH" in problem
               for problem in problems), problems


@pytest.mark.parametrize("kind", [DOCKER, PODMAN, APPTAINER])
def test_missing_image(kind, fakePrograms, monkeypatch, tmp_path):
    assert Runtime(kind, image="").problems() == [
        "CRYODIFFSEG_IMAGE is empty: name the engine image (a .sif file for apptainer)."]
    if kind == APPTAINER:
        assert Runtime(kind, image=str(tmp_path / "x.sif")).problems() == [
            f"CRYODIFFSEG_IMAGE: the apptainer image '{tmp_path / 'x.sif'}' does not exist."]
        return
    assert Runtime(kind, image="cryodiffseg:0.1.0").problems() == []  # the fake program knows every image
    with open(fakePrograms / f"{kind}.argv") as handle:
        assert [json.loads(line) for line in handle] == ["image", "inspect", "--format", "{{.Id}}",
                                                         "cryodiffseg:0.1.0"]
    monkeypatch.setenv("FAKE_EXIT", "125")
    (problem,) = Runtime(kind, image="cryodiffseg:0.1.0").problems()
    assert problem.startswith(f"CRYODIFFSEG_IMAGE: {kind} has no image 'cryodiffseg:0.1.0'")


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
