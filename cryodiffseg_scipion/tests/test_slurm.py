"""The engine as SLURM jobs through Scipion's queue system, on a real one-node SLURM cluster of this machine.

setUpClass installs Debian's slurm-wlm and munge where they are missing (root), starts munged, slurmctld and
slurmd (slurm_cluster.py) and writes README's hosts.conf; the class cleanup stops them and checks that
nothing of the cluster still runs. One project holds two chains of the same protocols on two small
generated tomograms (and a truncated one): one run on this machine, one with "Use a queue engine" and
QUEUE_FOR_JOBS = Y. Each stage checks that every engine call was its own job (sacct), that the jobs of the
queue chain give the same outputs as the local chain, and the last test kills a job with scancel.

Where SLURM cannot be installed (not root, no apt-get) the class is skipped saying why; with
CRYODIFFSEG_REQUIRE_SLURM=1 (CI) it fails instead.
"""

import os
import re
import shutil
import sys
import time
import unittest

import numpy as np
import pyworkflow as pw
from pyworkflow.object import Pointer
from pyworkflow.project import Manager
from pyworkflow.protocol.constants import MODE_RESUME
from pyworkflow.tests import setupTestProject
from tomo.protocols import ProtImportTomograms
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from cryodiffseg_scipion.constants import (
    COORDINATES,
    FAILED_TOMOGRAMS,
    MEMBRANE_MASKS,
    MEMBRANE_PROBABILITIES,
    MODEL,
    PSEUDO_MASKS,
    PSEUDO_POINTS,
)
from cryodiffseg_scipion.protocols import (
    ProtCryoDiffSegPick,
    ProtCryoDiffSegPseudoLabels,
    ProtCryoDiffSegSegment,
    ProtCryoDiffSegTrain,
)

from cryodiffseg_scipion.protocols.protocol_base import gpusPerEngineCall

from .slurm_cluster import HOSTS_CONF, PARTITION, SlurmCluster, installReason
from .support import (KEEP_VAR, REPO, buildTinyBackbone, launchWithDeadline, pointsByTsId, requiresEngine, volumesByTsId,
                      writeDataSets)

REQUIRE_VAR = "CRYODIFFSEG_REQUIRE_SLURM"
# What a user gives in the queue form: memory and hours this one-node cluster has, every engine call a job.
QUEUE_PARAMS = {"JOB_MEMORY": "2048", "JOB_TIME": "1", "QUEUE_FOR_JOBS": "Y"}
QUEUE, LOCAL = "queue", "local"
ENGINE_STEPS = ("pseudoLabelStep", "trainStep", "engineStep")  # the steps that run the engine

SAMPLING = 10.0  # Angstrom per voxel
SHAPE_ZYX = (16, 64, 64)
DIMENSIONS_XYZ = [SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]]
TS_IDS = ("TS_01", "TS_02")
BROKEN = "TS_03"  # a truncated file: its engine job fails, the tomogram goes to the failed output
SLABS = "TS_01: 5-7; TS_02: 8:10"


def engineStepTimes(protocol):
    """{step id: (start, end)} of the protocol's engine steps."""
    return {step.getObjId(): (step.initTime.datetime(), step.endTime.datetime())
            for step in protocol.loadSteps() if step.funcName.get() in ENGINE_STEPS}


@requiresEngine
class TestSlurmQueue(TestBaseCentralizedLayer):
    """unittest runs the tests in name order; each stage uses the previous stage's outputs of its own chain."""

    @classmethod
    def setUpClass(cls):
        reason = installReason()
        if reason:
            if os.environ.get(REQUIRE_VAR):
                raise cls.failureException(f"{REQUIRE_VAR} is set but {reason}")
            print(f"SLURM test skipped: {reason}", file=sys.stderr)
            raise unittest.SkipTest(reason)
        cls.cluster = SlurmCluster()
        cls.addClassCleanup(cls.stopCluster)
        cls.cluster.start()
        cls.setEnvironment(cls.cluster.environment)  # protocols (and the sbatch they run) find the cluster
        cls.writeHostsConf()
        cls.setupProject()
        representative, dataset = cls.getOutputPath("representative"), cls.getOutputPath("dataset")
        writeDataSets(representative, dataset, TS_IDS, BROKEN, SHAPE_ZYX, SAMPLING)
        cls.backbone = buildTinyBackbone(cls.getOutputPath("tiny_backbone"))
        cls.tomograms, cls.dataset = cls.importTomograms(representative), cls.importTomograms(dataset)
        cls.runs = {LOCAL: {}, QUEUE: {}}
        cls.overheads = []  # (stage, step seconds - job seconds, job submit -> start seconds)

    @classmethod
    def stopCluster(cls):
        cls.cluster.stop()
        left = cls.cluster.leftovers()
        if left:
            raise AssertionError("SLURM processes still run after the cluster stopped:\n" + "\n".join(left))
        if not os.environ.get(KEEP_VAR):  # its configuration, state and daemon logs
            shutil.rmtree(cls.cluster.folder, ignore_errors=True)

    @classmethod
    def setEnvironment(cls, variables):
        previous = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)

        def restore():
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        cls.addClassCleanup(restore)

    @classmethod
    def writeHostsConf(cls):
        """README's hosts.conf where Scipion reads it (the test Scipion's config folder); the previous one back
        when the class is done."""
        path = pw.Config.SCIPION_HOSTS
        previous = None
        if os.path.exists(path):
            with open(path) as handle:
                previous = handle.read()

        def restore():
            if previous is None:
                os.remove(path)
            else:
                with open(path, "w") as handle:
                    handle.write(previous)

        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(HOSTS_CONF)
        cls.addClassCleanup(restore)

    @classmethod
    def setupProject(cls):
        """A project that reads the hosts.conf above (support.setupProject would write a basic one)."""
        previous = os.getcwd()
        setupTestProject(cls)

        def deleteProject():
            os.chdir(previous)
            if not os.environ.get(KEEP_VAR):
                Manager().deleteProject(cls.projName)

        cls.addClassCleanup(deleteProject)

    @classmethod
    def importTomograms(cls, folder):
        protocol = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="TS_*.mrc",
                                   samplingRate=SAMPLING)
        return launchWithDeadline(cls, protocol, 300).Tomograms

    @classmethod
    def tearDownClass(cls):
        if cls.overheads:
            print("\nqueue path per engine call: stage, step time - job time (s), job submit -> start (s)")
            for stage, extra, waiting in cls.overheads:
                print(f"  {stage:<14} {extra:6.1f} {waiting:4.0f}")

    # ------------------------------------------------------------------ running both ways
    def launchBothWays(self, stage, makeProtocol):
        """makeProtocol(way) run on this machine and through the queue; (local, queue) protocols."""
        for way in (LOCAL, QUEUE):
            protocol = makeProtocol(way)
            protocol.setObjLabel(f"{stage} ({way})")
            if way == QUEUE:
                protocol._useQueue.set(True)
                protocol.setQueueParams((PARTITION, QUEUE_PARAMS))
            started = time.monotonic()
            self.runs[way][stage] = launchWithDeadline(self, protocol, 1200)
            print(f"wall time: {stage:<13} {way:<6} {time.monotonic() - started:6.1f} s")
        local, queue = self.runs[LOCAL][stage], self.runs[QUEUE][stage]
        self.assertEqual(self.jobsOf(local), {}, "the local run submitted jobs")
        jobs = self.assertOneJobPerEngineCall(stage, queue)
        with open(queue.getLogPaths()[0]) as handle:  # what the user reads in the run's log
            log = handle.read()
        for jobId, job in jobs.items():
            self.assertIn(f"logs/scipion{job['Name']}.job", log)
            self.assertIn(f"Launched job with id {jobId}\n", log)
        return local, queue

    def jobsOf(self, protocol):
        """{job id: completion record, with 'outputs' (the --out folders' names) and 'step' (the step's id)} of
        the protocol's finished jobs.

        Scipion names a step's jobs <protocol id>-<step id>-<count>, their scripts scipion<name>.job."""
        jobs = {}
        for jobId, job in self.cluster.jobs().items():
            if job["Name"].startswith(f"{protocol.strId()}-"):
                script = os.path.join(self.proj.getPath(), protocol._getLogsPath(f"scipion{job['Name']}.job"))
                with open(script) as handle:
                    outputs = re.findall(r"--out '?([^' ]+)", handle.read())
                jobs[jobId] = {**job, "outputs": [os.path.basename(path) for path in outputs],
                               "step": int(job["Name"].split("-")[1])}
        return jobs

    def assertOneJobPerEngineCall(self, stage, protocol):
        """As many finished jobs as engine steps, each running one engine call; sacct lists them; each had the
        CPUs of one engine call."""
        jobs = self.jobsOf(protocol)
        steps = engineStepTimes(protocol)
        self.assertEqual(len(jobs), len(steps), f"{stage}: jobs {sorted(jobs)} for {len(steps)} engine steps")
        for job in jobs.values():
            self.assertEqual(len(job["outputs"]), 1, job)
            self.assertEqual(int(job["ProcCnt"]), protocol.getBinThreads(), job)
        listed = self.cluster.sacct(jobs)
        self.assertEqual(sorted(listed), sorted(jobs), "sacct does not list every job")
        for jobId, job in jobs.items():
            self.assertEqual(listed[jobId]["JobName"], job["Name"])
            start, end = steps[job["step"]]
            self.overheads.append((stage, (end - start).total_seconds()
                                   - (job["EndTime"] - job["StartTime"]).total_seconds(),
                                   (job["StartTime"] - job["SubmitTime"]).total_seconds()))
        self.assertEqual(sorted(job["step"] for job in jobs.values()), sorted(steps), "a step without its job")
        return jobs

    # ------------------------------------------------------------------ the chain
    def test_01_pseudolabels(self):
        local, queue = self.launchBothWays("pseudo-labels", lambda way: self.newProtocol(
            ProtCryoDiffSegPseudoLabels, inTomograms=self.tomograms, slabs=SLABS, particles=1,
            backbone=self.backbone, numSamples=1, circularity=0.5, minAreaNm=5.0, membraneDistance=0.0,
            crowdingDistance=4.0, dedupNm=1.0, numberOfThreads=3, binThreads=1, gpuList=""))
        self.checkTomoMasks(getattr(queue, PSEUDO_MASKS), expectedSetSize=2, expectedSRate=SAMPLING,
                            expectedDimensions=DIMENSIONS_XYZ)
        self.assertSameVolumes(getattr(local, PSEUDO_MASKS), getattr(queue, PSEUDO_MASKS))
        self.assertSamePoints(getattr(local, PSEUDO_POINTS), getattr(queue, PSEUDO_POINTS))

    def test_02_train(self):
        def train(way):
            protocol = self.newProtocol(ProtCryoDiffSegTrain, iterations=4, pickerIterations=4,
                                        particleDiameterNm=8.0, numberOfThreads=2, gpuList="")
            protocol.pseudoLabels.append(Pointer(self.runs[way]["pseudo-labels"]))
            return protocol

        local, queue = self.launchBothWays("train", train)
        localModel, queueModel = getattr(local, MODEL), getattr(queue, MODEL)
        self.assertEqual((queueModel.getTargets(), queueModel.getVoxelSize(), queueModel.getParticleDiameter()),
                         (localModel.getTargets(), localModel.getVoxelSize(), localModel.getParticleDiameter()))
        self.assertEqual(sorted(os.listdir(queueModel.getPath())), sorted(os.listdir(localModel.getPath())))

    def test_03_segment(self):
        local, queue = self.launchBothWays("segment", lambda way: self.newProtocol(
            ProtCryoDiffSegSegment, inTomograms=self.dataset, model=getattr(self.runs[way]["train"], MODEL),
            numberOfThreads=3, binThreads=1, gpuList=""))
        for name in (MEMBRANE_MASKS, MEMBRANE_PROBABILITIES):
            self.checkTomoMasks(getattr(queue, name), expectedSetSize=2, expectedSRate=SAMPLING,
                                expectedDimensions=DIMENSIONS_XYZ)
            self.assertSameVolumes(getattr(local, name), getattr(queue, name))
        for protocol in (local, queue):
            self.assertEqual(list(getattr(protocol, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])

        # Both tomograms' jobs were in the queue before either ended; the broken one's job failed.
        jobs = {job["outputs"][0]: job for job in self.jobsOf(queue).values()}
        self.assertEqual(sorted(jobs), [*TS_IDS, BROKEN])
        print("segment jobs:", {tsId: (str(job["SubmitTime"]), str(job["StartTime"]), str(job["EndTime"]))
                                for tsId, job in jobs.items()})
        self.assertLess(max(jobs[tsId]["SubmitTime"] for tsId in TS_IDS),
                        min(jobs[tsId]["EndTime"] for tsId in TS_IDS), "the two tomograms' jobs did not overlap")
        self.assertEqual([jobs[tsId]["JobState"] for tsId in TS_IDS], ["COMPLETED", "COMPLETED"])
        self.assertEqual((jobs[BROKEN]["JobState"], jobs[BROKEN]["ExitCode"]), ("FAILED", "2:0"))

    def test_04_pick(self):
        # a threshold near 0: nearly every local maximum of an untrained picker's heat map is a candidate
        local, queue = self.launchBothWays("pick", lambda way: self.newProtocol(
            ProtCryoDiffSegPick, inTomograms=self.dataset, model=getattr(self.runs[way]["train"], MODEL),
            threshold=0.001, maxPoints=40, numberOfThreads=3, binThreads=1, gpuList=""))
        self.checkCoordinates(getattr(queue, COORDINATES), expectedBoxSize=8, expectedSRate=SAMPLING)
        self.assertGreater(getattr(queue, COORDINATES).getSize(), 0)
        self.assertSamePoints(getattr(local, COORDINATES), getattr(queue, COORDINATES))
        self.assertEqual(list(getattr(queue, FAILED_TOMOGRAMS).getTSIds()), [BROKEN])

    def test_05_cancelled_job(self):
        """scancel on TS_02's job: the step fails, the summary says why; a continued run redoes that step only."""
        protocol = self.newProtocol(ProtCryoDiffSegSegment, inTomograms=self.tomograms,
                                    model=getattr(self.runs[QUEUE]["train"], MODEL),
                                    numberOfThreads=2, binThreads=1, gpuList="")  # one engine call at a time
        protocol.setObjLabel("segment (queue, one job cancelled)")
        protocol._useQueue.set(True)
        protocol.setQueueParams((PARTITION, QUEUE_PARAMS))
        self.proj.launchProtocol(protocol, wait=False)
        cancelled = self.cancelJobOf(protocol, "TS_02")
        deadline = time.monotonic() + 600
        while protocol.isActive() and time.monotonic() < deadline:
            time.sleep(2)
            self.proj._updateProtocol(protocol)
        self.assertTrue(protocol.isFailed(), f"{protocol.getStatus()} after cancelling job {cancelled}")
        self.assertEqual(self.cluster.sacct([cancelled])[cancelled]["State"], "CANCELLED")
        summary = "\n".join(protocol.summary())
        print(summary)
        self.assertIn("*ERROR:*", summary)
        self.assertIn(f"The queue job {cancelled} of this engine call ended before the engine did", summary)
        self.assertIn("scancel", summary)
        self.assertIn("Continue this run", summary)

        before = engineStepTimes(protocol)
        jobsBefore = set(self.jobsOf(protocol))
        protocol.runMode.set(MODE_RESUME)
        protocol = launchWithDeadline(self, protocol, 600)
        after = engineStepTimes(protocol)
        redone = {stepId for stepId in after if after[stepId] != before.get(stepId)}
        self.assertEqual(len(redone), 1, f"steps run again: {redone}")
        newJobs = {jobId: job for jobId, job in self.jobsOf(protocol).items() if jobId not in jobsBefore}
        self.assertEqual([job["outputs"] for job in newJobs.values()], [["TS_02"]])
        reference = self.runs[LOCAL]["segment"]
        for name in (MEMBRANE_MASKS, MEMBRANE_PROBABILITIES):
            self.checkTomoMasks(getattr(protocol, name), expectedSetSize=2, expectedSRate=SAMPLING,
                                expectedDimensions=DIMENSIONS_XYZ)
            self.assertSameVolumes(getattr(reference, name), getattr(protocol, name), tsIds=TS_IDS)
        self.assertIsNone(getattr(protocol, FAILED_TOMOGRAMS, None))

    def cancelJobOf(self, protocol, tsId, seconds=600):
        """scancel the protocol's job for tsId as soon as it runs; its id."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for jobId, name in self.cluster.runningJobs().items():
                if name.startswith(f"{protocol.strId()}-"):
                    script = os.path.join(self.proj.getPath(), protocol._getLogsPath(f"scipion{name}.job"))
                    with open(script) as handle:
                        if re.search(rf"--out '?[^' ]*/{tsId}\b", handle.read()):
                            self.cluster.scancel(jobId)
                            return jobId
            time.sleep(0.5)
        raise self.failureException(f"no job of {tsId} ran within {seconds} s")

    # ------------------------------------------------------------------ checks
    # Equal up to the engine's float round-off: the same computation may differ in the last bit between two
    # processes (vectorised kernels follow the memory alignment of their buffers), e.g. 1.2e-7 in a probability.
    def assertSameVolumes(self, localSet, queueSet, tsIds=None):
        local, queue = volumesByTsId(localSet), volumesByTsId(queueSet)
        if tsIds:
            local = {tsId: local[tsId] for tsId in tsIds}
        self.assertEqual(sorted(queue), sorted(local))
        for tsId, (volume, voxelSize) in local.items():
            other, otherVoxelSize = queue[tsId]
            self.assertEqual((other.shape, other.dtype, otherVoxelSize), (volume.shape, volume.dtype, voxelSize))
            print(f"{tsId} {volume.dtype}: {np.mean(other != volume):.2%} of the voxels differ, "
                  f"by {np.max(np.abs(other.astype(float) - volume)):.2g} at most")
            if np.issubdtype(volume.dtype, np.floating):
                np.testing.assert_allclose(other, volume, rtol=0, atol=1e-5, err_msg=tsId)
            else:  # labels: at most one voxel in ten thousand may differ
                self.assertLessEqual(np.mean(other != volume), 1e-4, tsId)

    def assertSamePoints(self, localSet, queueSet):
        local, queue = pointsByTsId(localSet), pointsByTsId(queueSet)
        self.assertEqual(sorted(queue), sorted(local))
        for tsId, points in local.items():
            self.assertEqual(queue[tsId].shape, points.shape, tsId)
            print(f"{tsId}: {len(points)} points, positions and scores differ by "
                  f"{np.max(np.abs(queue[tsId] - points), initial=0):.2g} at most")
            np.testing.assert_allclose(queue[tsId], points, rtol=0, atol=1e-4, err_msg=tsId)


README = os.path.join(REPO, "README.md")


@unittest.skipUnless(os.path.exists(README), "README.md is not beside the plugin (not a source checkout)")
class TestReadmeHostsConf(unittest.TestCase):
    def test_readme_shows_the_tested_hosts_conf(self):
        with open(README) as handle:
            readme = handle.read()
        block = "\n".join("    " + line if line else "" for line in HOSTS_CONF.rstrip("\n").split("\n"))
        self.assertIn(block, readme, "README's SLURM hosts.conf is not the one test_slurm.py runs")


class TestGpusPerJob(unittest.TestCase):
    def test_gres_of_each_engine_job(self):
        """README's examples: the GPU list shared out among the concurrent steps (Scipion threads less one)."""
        for gpuList, workers, expected in (([], 2, 0), ([0, 1], 2, 1), ([0, 1, 2, 3], 2, 2), ([0, 1], 1, 2),
                                           ([0, 1, 2], 2, 2), ([0], 2, 1), ([99], 1, 0)):  # 99: Scipion's void GPU
            with self.subTest(gpuList=gpuList, workers=workers):
                self.assertEqual(gpusPerEngineCall(gpuList, workers), expected)
