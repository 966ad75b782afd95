"""The engine command lines of each runtime, and the translation of slabs and engine files (no Scipion project)."""

import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path
from unittest import mock

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


def searchPath(programs):
    """A PATH where the fake programs are the only container runtimes."""
    return f"{programs}{os.pathsep}/usr/bin{os.pathsep}/bin"


def segmentCall(runtime, project, gpuIds=(), threads=2):
    args = ["segment", project["link"], "--model", project["model"], "--out", project["out"]]
    return runtime.command(args, inputs=[project["link"], project["model"], project["link"]],
                           outputDir=project["out"], gpuIds=gpuIds, threads=threads)


class TestRuntime(unittest.TestCase):
    """Each test has its own temporary folder (tmp), removed afterwards."""

    def setUp(self):
        self.tmp = self.newFolder()

    def newFolder(self):
        folder = tempfile.mkdtemp(prefix="cryodiffseg-runtime-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        return Path(folder)

    @staticmethod
    def fakePrograms(tmp):
        """docker, podman, apptainer that record their arguments; their folder (see searchPath)."""
        folder = tmp / "bin"
        folder.mkdir()
        for name in ("docker", "podman", "apptainer"):
            program = folder / name
            program.write_text(RECORDER)
            program.chmod(0o755)
        return folder

    def fakeProgramsOnPath(self):
        """The fake programs, alone on the PATH for the rest of the test."""
        folder = self.fakePrograms(self.tmp)
        patcher = mock.patch.dict(os.environ, {"PATH": searchPath(folder)})
        patcher.start()
        self.addCleanup(patcher.stop)
        return folder

    @staticmethod
    def project(tmp):
        """A protocol step of a project with a hostile name: an imported tomogram (a link), a model, an output."""
        data = tmp / "user data"
        data.mkdir()
        real = data / HOSTILE
        real.write_bytes(b"")
        runs = tmp / "my project" / "Runs"
        link = runs / "000002_ProtImportTomograms" / "extra" / HOSTILE
        link.parent.mkdir(parents=True)
        link.symlink_to(real)
        model = runs / "000040_ProtCryoDiffSegTrain" / "extra" / "model"
        model.mkdir(parents=True)
        out = runs / "000061_ProtCryoDiffSegSegment" / "extra" / "TS 01"
        out.mkdir(parents=True)
        return {"real": str(real), "link": str(link), "model": str(model), "out": str(out)}

    def runThroughShell(self, call, programs, program):
        """Run the command line with /bin/sh as runJob does; the argv the fake program received."""
        subprocess.run(str(call), shell=True, check=True, cwd=programs)
        self.assertFalse((programs / "INJECTED").exists(), "a file name ran a command")
        with open(programs / f"{program}.argv") as handle:
            return [json.loads(line) for line in handle]

    def test_local_quotes_every_word_and_selects_the_gpus(self):
        call = Runtime(LOCAL, engine="/opt/cds env/bin/cryodiffseg").command(
            ["segment", HOSTILE, "--out", "/out dir"], gpuIds=[2, 3], threads=4)
        self.assertEqual(words(call), ["env", "-u", "PYTHONPATH", "-u", "PYTHONHOME", "OMP_NUM_THREADS=4",
                                       "MKL_NUM_THREADS=4", "CUDA_VISIBLE_DEVICES=2,3", "/opt/cds env/bin/cryodiffseg",
                                       "segment", HOSTILE, "--out", "/out dir"])
        self.assertNotIn("%(GPU)s", str(call))  # runJob formats '%' only when this placeholder is present

    def test_local_without_gpus_hides_them_and_drops_scipion_python_path(self):
        call = Runtime(LOCAL, engine="cryodiffseg").command(["pick", "t.mrc"])
        self.assertEqual(words(call)[5:7], ["CUDA_VISIBLE_DEVICES=", "cryodiffseg"])
        engine = self.tmp / "cryodiffseg"  # prints what the engine would see
        engine.write_text('#!/bin/sh\necho "PYTHONPATH=${PYTHONPATH-unset} CUDA=$CUDA_VISIBLE_DEVICES args=$*"\n')
        engine.chmod(0o755)
        call = Runtime(LOCAL, engine=str(engine)).command(["pick", "t.mrc"])
        shown = subprocess.run(str(call), shell=True, capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": "/scipion/site-packages"}).stdout
        self.assertEqual(shown.strip(), "PYTHONPATH=unset CUDA= args=pick t.mrc")

    def test_local_weights_folder_sets_the_caches(self):
        argv = words(Runtime(LOCAL, weights="/srv/weights").command(["pick"]))
        self.assertIn("HF_HOME=/srv/weights/huggingface", argv)
        self.assertIn("CELLPOSE_LOCAL_MODELS_PATH=/srv/weights/cellpose", argv)

    def test_docker_command_line(self):
        fakePrograms, project = self.fakeProgramsOnPath(), self.project(self.tmp)
        runtime = Runtime(DOCKER, image="cryodiffseg:0.1.0", extraArgs="--shm-size 8g", weights=str(self.tmp))
        call = segmentCall(runtime, project, gpuIds=[1, 3])
        self.assertEqual(call.program, "docker")
        argv = self.runThroughShell(call, fakePrograms, "docker")
        self.assertEqual(argv[:4], ["run", "--rm", "--network", "none"])
        self.assertEqual(optionValues(argv, "--user"), [f"{os.getuid()}:{os.getgid()}"])
        self.assertEqual(optionValues(argv, "--gpus"), ['"device=1,3"'])
        self.assertNotIn("--device", argv)
        # each input once, read-only, from its real location (the link's target) at the path the engine is given
        self.assertEqual(optionValues(argv, "--volume"), [f"{project['real']}:{project['link']}:ro",
                                                          f"{project['model']}:{project['model']}:ro",
                                                          f"{self.tmp}:/opt/cryodiffseg/weights:ro",
                                                          f"{project['out']}:{project['out']}"])
        self.assertEqual(optionValues(argv, "--workdir"), [project["out"]])
        self.assertEqual(optionValues(argv, "--env"), ["HOME=/tmp", "OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2"])
        self.assertIn("--shm-size", argv)
        entry = argv.index("--entrypoint")
        self.assertEqual(argv[entry:], ["--entrypoint", "cryodiffseg", "cryodiffseg:0.1.0", "segment", project["link"],
                                        "--model", project["model"], "--out", project["out"]])

    def test_docker_without_gpus_selects_none(self):
        argv = words(segmentCall(Runtime(DOCKER, image="img"), self.project(self.tmp)))
        self.assertNotIn("--gpus", argv)
        self.assertNotIn("--device", argv)
        self.assertNotIn("CUDA_VISIBLE_DEVICES", str(argv))

    def test_podman_runs_as_the_calling_user(self):
        """Rootless podman (a user) maps the user to itself with keep-id; rootful podman (root, as in CI) needs none."""
        project = self.project(self.tmp)
        for uid, gid, user in [(1234, 100, ["--userns", "keep-id", "--user", "1234:100"]), (0, 0, ["--user", "0:0"])]:
            with self.subTest(uid=uid), mock.patch("cryodiffseg_scipion.runtime.os.getuid", return_value=uid), \
                    mock.patch("cryodiffseg_scipion.runtime.os.getgid", return_value=gid):
                argv = words(segmentCall(Runtime(PODMAN, image="localhost/cryodiffseg:0.1.0"), project))
                userOptions = argv[argv.index("--no-healthcheck") + 1:argv.index("--env")]
                self.assertEqual(userOptions, user)

    def test_podman_command_line(self):
        fakePrograms, project = self.fakeProgramsOnPath(), self.project(self.tmp)
        call = segmentCall(Runtime(PODMAN, image="localhost/cryodiffseg:0.1.0"), project, gpuIds=[0, 2], threads=None)
        self.assertEqual(call.program, "podman")
        argv = self.runThroughShell(call, fakePrograms, "podman")
        self.assertEqual(argv[:4], ["run", "--rm", "--network", "none"])
        self.assertEqual(optionValues(argv, "--device"), ["nvidia.com/gpu=0", "nvidia.com/gpu=2"])
        self.assertNotIn("--gpus", argv)
        self.assertEqual(optionValues(argv, "--env"), ["HOME=/tmp"])
        self.assertEqual(optionValues(argv, "--volume"), [f"{project['real']}:{project['link']}:ro",
                                                          f"{project['model']}:{project['model']}:ro",
                                                          f"{project['out']}:{project['out']}"])
        self.assertEqual(argv[argv.index("localhost/cryodiffseg:0.1.0") + 1:],
                         ["segment", project["link"], "--model", project["model"], "--out", project["out"]])

    def test_apptainer_command_line(self):
        fakePrograms, project = self.fakeProgramsOnPath(), self.project(self.tmp)
        call = segmentCall(Runtime(APPTAINER, image="/images/cds 0.1.sif", weights=str(self.tmp)), project, gpuIds=[3])
        self.assertEqual(call.program, shlex.quote(str(fakePrograms / "apptainer")))
        argv = self.runThroughShell(call, fakePrograms, "apptainer")
        self.assertEqual(argv[:6], ["exec", "--containall", "--cleanenv", "--net", "--network", "none"])
        self.assertIn("--nv", argv)
        self.assertEqual(optionValues(argv, "--env"),
                         ["OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2", "CUDA_VISIBLE_DEVICES=3"])
        self.assertEqual(optionValues(argv, "--bind"), [f"{project['real']}:{project['link']}:ro",
                                                        f"{project['model']}:{project['model']}:ro",
                                                        f"{self.tmp}:/opt/cryodiffseg/weights:ro",
                                                        f"{project['out']}:{project['out']}"])
        self.assertEqual(optionValues(argv, "--pwd"), [project["out"]])
        self.assertEqual(argv[argv.index("/images/cds 0.1.sif") + 1:], ["cryodiffseg", "segment", project["link"],
                                                                        "--model", project["model"], "--out",
                                                                        project["out"]])

    def test_apptainer_without_gpus_loads_no_driver(self):
        self.fakeProgramsOnPath()
        argv = words(segmentCall(Runtime(APPTAINER, image="/images/cds.sif"), self.project(self.tmp)))
        self.assertNotIn("--nv", argv)
        self.assertNotIn("CUDA_VISIBLE_DEVICES", str(argv))

    def test_paths_that_a_bind_cannot_carry_are_refused(self):
        for kind in (DOCKER, PODMAN, APPTAINER):
            for name in ("TS:01.mrc", "TS,01.mrc"):
                with self.subTest(kind=kind, name=name), self.assertRaisesRegex(ValueError, "contains ':' or ','"):
                    Runtime(kind, image="img").command(["pick", f"/data/{name}"], inputs=[f"/data/{name}"],
                                                       outputDir="/o")

    def test_local_problems_name_the_variable_to_fix(self):
        self.assertIn("CRYODIFFSEG_ENGINE", Runtime(LOCAL, engine=str(self.tmp / "missing")).problems()[0])
        engine = self.tmp / "cryodiffseg"
        engine.write_text("#!/bin/sh\n")
        engine.chmod(engine.stat().st_mode | stat.S_IXUSR)
        self.assertEqual(Runtime(LOCAL, engine=str(engine)).problems(), [])
        self.assertIn("CRYODIFFSEG_RUNTIME", Runtime("singularity-ce").problems()[0])
        self.assertEqual(Runtime(LOCAL, engine=str(engine), weights=str(self.tmp / "none")).problems(), [
            f"CRYODIFFSEG_WEIGHTS: the weights folder '{self.tmp / 'none'}' does not exist."])

    def test_missing_runtime_program(self):
        for kind in (DOCKER, PODMAN, APPTAINER):
            tmp = self.newFolder()
            with self.subTest(kind=kind), mock.patch.dict(os.environ, {"PATH": str(tmp)}):
                problems = Runtime(kind, image=str(tmp / "img.sif")).problems()
                self.assertTrue(any(f"CRYODIFFSEG_RUNTIME is '{kind}' but" in problem and "not on the PATH" in problem
                                    for problem in problems), problems)

    def test_missing_image(self):
        for kind in (DOCKER, PODMAN, APPTAINER):
            tmp = self.newFolder()
            programs = self.fakePrograms(tmp)
            # the fake programs alone on the PATH; PATH and FAKE_EXIT restored after each kind
            with self.subTest(kind=kind), mock.patch.dict(os.environ, {"PATH": searchPath(programs)}):
                self.assertMissingImage(kind, programs, tmp)

    def assertMissingImage(self, kind, fakePrograms, tmp):
        self.assertEqual(Runtime(kind, image="").problems(), [
            "CRYODIFFSEG_IMAGE is empty: name the engine image (a .sif file for apptainer)."])
        if kind == APPTAINER:
            self.assertEqual(Runtime(kind, image=str(tmp / "x.sif")).problems(), [
                f"CRYODIFFSEG_IMAGE: the apptainer image '{tmp / 'x.sif'}' does not exist."])
            return
        self.assertEqual(Runtime(kind, image="cryodiffseg:0.1.0").problems(), [])  # the fake program knows every image
        with open(fakePrograms / f"{kind}.argv") as handle:
            self.assertEqual([json.loads(line) for line in handle],
                             ["image", "inspect", "--format", "{{.Id}}", "cryodiffseg:0.1.0"])
        os.environ["FAKE_EXIT"] = "125"
        (problem,) = Runtime(kind, image="cryodiffseg:0.1.0").problems()
        self.assertTrue(problem.startswith(f"CRYODIFFSEG_IMAGE: {kind} has no image 'cryodiffseg:0.1.0'"), problem)

    def test_unknown_runtime_builds_no_command(self):
        with self.assertRaisesRegex(ValueError, "Unknown runtime"):
            Runtime("kubernetes").command(["pick"])

    def test_slabs_per_tomogram(self):
        self.assertEqual(parseSlabs("TS_0008: 201-298; TS_0010: 100-140, 150\nTS_0011:3:5"), {
            "TS_0008": "201-298", "TS_0010": "100-140,150", "TS_0011": "3:5"})
        self.assertEqual(slabSlices("3-5,8,10:12"), [3, 4, 5, 8, 10, 11])

    def test_bad_slabs_say_what_is_wrong(self):
        for text, message in [
            ("TS_01 5-7", "is not 'TSID: RANGES'"),
            ("TS_01: 5-7; TS_01: 9", "given twice"),
            ("TS_01: five", "is not a z range"),
            ("TS_01: 7-5", "empty z range"),
            ("TS_01: 4:4", "empty z range"),
        ]:
            with self.subTest(text=text), self.assertRaisesRegex(SlabError, message):
                parseSlabs(text)

    def test_engine_points_and_outputs(self):
        (self.tmp / "TS_01_particles.csv").write_text("x,y,z,score\n1.5,2,3,0.9\n")
        (self.tmp / "pseudo.csv").write_text("x,y,z\n4,5,6\n")
        self.assertEqual(readPoints(findOutput(str(self.tmp), "_particles.csv")), [(1.5, 2.0, 3.0, 0.9)])
        self.assertEqual(readPoints(str(self.tmp / "pseudo.csv")), [(4.0, 5.0, 6.0, None)])
        with self.assertRaises(FileNotFoundError):
            findOutput(str(self.tmp), "_membrane_mask.mrc")
