"""A one-node SLURM cluster on this machine, for tests: Debian's slurm-wlm and munge, started and stopped here.

Everything lives in one temporary folder (configuration, state, spool, logs, munge's socket), so a system
SLURM or munge of this machine is neither used nor disturbed; clients find the cluster through SLURM_CONF.
The daemons run in the foreground as children of this process (munged as the munge user, slurmctld and
slurmd as root), so stopping them is terminating and waiting for them: nothing stays behind.

Without systemd or cgroups (containers, CI sandboxes): processes are tracked through /proc, tasks are not
confined, and accounting is the job-completion file that `sacct --completion` reads (SLURM 22.05 has no
file-based accounting storage; the full sacct needs slurmdbd and a database).

Not named test*: nothing is collected here. Needs root (apt-get, munge's key, the daemons).
"""

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PACKAGES = ("slurm-wlm", "munge")  # slurm-wlm: slurmctld, slurmd and the clients
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sacct", "scontrol")
MUNGE_KEY = "/etc/munge/munge.key"
NODE_CPUS = 2  # two one-CPU jobs at a time, whatever the machine has
PARTITION = "gpu"  # the queue name of README's hosts.conf; this node has no GPU: its jobs run on the CPU
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Submit", "Start", "End", "NodeList")
START_SECONDS = 60
# README's hosts.conf (section "SLURM through Scipion's queue configuration"), which the SLURM test uses as is.
HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SLURM
MANDATORY = False
SUBMIT_COMMAND = sbatch %_(JOB_SCRIPT)s
CANCEL_COMMAND = scancel %_(JOB_ID)s
CHECK_COMMAND = squeue -h -j %_(JOB_ID)s
SUBMIT_PREFIX = scipion
SUBMIT_TEMPLATE = #!/bin/bash
    #SBATCH --job-name=%_(JOB_NAME)s
    #SBATCH --output=%_(JOB_LOGS)s.out
    #SBATCH --error=%_(JOB_LOGS)s.err
    #SBATCH --partition=%_(JOB_QUEUE)s
    #SBATCH --ntasks=1
    #SBATCH --cpus-per-task=%_(JOB_THREADS)d
    #SBATCH --mem=%_(JOB_MEMORY)s
    #SBATCH --time=%_(JOB_TIME)s:00:00
    #SBATCH --gres=gpu:%_(GPU_COUNT)s
    %_(JOB_COMMAND)s
QUEUES = {
    "gpu": [
        ["JOB_MEMORY", "32768", "Memory (MB)", "Memory of each job"],
        ["JOB_TIME", "24", "Time (hours)", "Wall time of each job"],
        ["QUEUE_FOR_JOBS", "Y", "Use queue for jobs", "Y: every engine run is its own job"]
    ]}
"""
STOP_SECONDS = 30


def missingPrograms():
    return [program for program in PROGRAMS if not shutil.which(program, path=_sbinPath())]


def _sbinPath():
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def installReason():
    """None when SLURM is installed or can be installed here and its daemons started, else why not."""
    if os.geteuid() != 0:
        missing = f" ({', '.join(missingPrograms())} not installed)" if missingPrograms() else ""
        return f"starting a SLURM cluster needs root (munged runs as the munge user, slurmd as root){missing}"
    if not missingPrograms():
        return None
    if not shutil.which("apt-get"):
        return f"SLURM is not installed ({', '.join(missingPrograms())} missing) and there is no apt-get"
    return None


def install():
    """Debian's packages, if a program is missing (needs root). The packages' services are not started."""
    if not missingPrograms():
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    if missingPrograms():
        raise RuntimeError(f"after installing {' '.join(PACKAGES)}: {', '.join(missingPrograms())} still missing")


def machineMemoryMiB():
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost; `with SlurmCluster() as cluster:` or start() / stop()."""

    def __init__(self, folder=None):
        self.folder = folder or tempfile.mkdtemp(prefix="cryodiffseg-slurm-")
        self.node = socket.gethostname().split(".")[0]
        self.config = os.path.join(self.folder, "slurm.conf")
        self.mungeSocket = os.path.join(self.folder, "munge", "munge.socket")
        self.processes = {}  # name: Popen, in start order
        self.environment = {"SLURM_CONF": self.config}  # what clients (sbatch, squeue, ...) need

    # ------------------------------------------------------------------ start / stop
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        install()
        os.chmod(self.folder, 0o755)  # munged, as the munge user, reaches its own folder inside
        self._writeConfig()
        try:
            self._startMunge()
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", self.config])
            self._waitFor(lambda: self._client("scontrol", "ping").returncode == 0, "slurmctld answers")
            self._spawn("slurmd", ["slurmd", "-D", "-f", self.config, "-N", self.node])
            self._waitFor(self._nodeIdle, f"node {self.node} is idle")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Cancel every job, wait for them to leave the node, stop the daemons (reverse order), check none is left."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self._client("scancel", "--full", "--user", getpass.getuser())
            try:
                self._waitFor(lambda: not self.queuedJobs() and not self._stepPids(), "jobs end", STOP_SECONDS)
            except RuntimeError:
                pass
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        deadline = time.monotonic() + STOP_SECONDS  # job step daemons (slurmstepd) end on their own, shortly
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)

    def leftovers(self):
        """Processes of this cluster still running (its daemons and job steps), as 'pid command' lines."""
        lines = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    words = handle.read().split(b"\0")
            except OSError:
                continue
            command = " ".join(word.decode(errors="replace") for word in words if word)
            if not command:  # a zombie, waiting for init to collect it: it runs nothing
                continue
            if self.folder in command or (command.startswith("slurmstepd") and self._stepOfThisCluster(pid)):
                lines.append(f"{pid} {command}")
        return lines

    def _stepOfThisCluster(self, pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                return f"SLURM_CONF={self.config}".encode() in handle.read().split(b"\0")
        except OSError:
            return False

    # ------------------------------------------------------------------ queries
    def queuedJobs(self):
        """Ids of the jobs SLURM still holds (pending, running or completing)."""
        result = self._client("squeue", "-h", "-o", "%i")
        return result.stdout.split() if result.returncode == 0 else []

    def sacct(self, jobIds=None):
        """Finished jobs as {job id: {SACCT_FIELDS...}} from `sacct --completion` (times as datetimes).

        sacct's Submit column shows the start time in this mode; SubmitTime of jobs() is the real one."""
        arguments = ["--completion", "-X", "-P", "-n", "-o", ",".join(SACCT_FIELDS), "-S", "2000-01-01"]
        if jobIds:
            arguments += ["-j", ",".join(str(job) for job in jobIds)]
        result = self._client("sacct", *arguments)
        if result.returncode:
            raise RuntimeError(f"sacct failed: {result.stderr.strip()}")
        rows = {}
        for line in result.stdout.splitlines():
            values = line.split("|")
            if len(values) == len(SACCT_FIELDS):
                row = dict(zip(SACCT_FIELDS, values))
                for field in ("Submit", "Start", "End"):
                    row[field] = _parseTime(row[field])
                rows[row["JobID"]] = row
        return rows

    def jobs(self):
        """Finished jobs as {job id: {field: value}} from the job-completion file (SubmitTime, StartTime and
        EndTime as datetimes, ProcCnt the CPUs it had)."""
        path = os.path.join(self.folder, "log", "jobcomp.txt")
        if not os.path.exists(path):
            return {}
        jobs = {}
        with open(path) as handle:
            for line in handle:
                fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
                for name in ("SubmitTime", "StartTime", "EndTime"):
                    fields[name] = _parseTime(fields.get(name, ""))
                jobs[fields["JobId"]] = fields
        return jobs

    def scancel(self, jobId):
        result = self._client("scancel", str(jobId))
        if result.returncode:
            raise RuntimeError(f"scancel {jobId} failed: {result.stderr.strip()}")

    def runningJobs(self):
        """{job id: job name} of the running jobs."""
        result = self._client("squeue", "-h", "-t", "RUNNING", "-o", "%i %j")
        return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)

    def logTail(self, lines=30):
        """The last lines of each daemon's log (for failures)."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            path = os.path.join(self.folder, "log", f"{name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    parts.append(f"--- {name}.log\n" + "".join(handle.readlines()[-lines:]))
        return "\n".join(parts)

    # ------------------------------------------------------------------ internals
    def _writeConfig(self):
        for sub in ("state", "spool", "log", "run"):
            os.makedirs(os.path.join(self.folder, sub), exist_ok=True)
        folder = self.folder
        settings = {
            "ClusterName": "cryodiffseg-test",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "SlurmctldPort": str(_freePort()),
            "SlurmdPort": str(_freePort()),
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.mungeSocket}",
            "StateSaveLocation": f"{folder}/state",
            "SlurmdSpoolDir": f"{folder}/spool",
            "SlurmctldPidFile": f"{folder}/run/slurmctld.pid",
            "SlurmdPidFile": f"{folder}/run/slurmd.pid",
            "SlurmctldLogFile": f"{folder}/log/slurmctld.log",
            "SlurmdLogFile": f"{folder}/log/slurmd.log",
            "ProctrackType": "proctrack/linuxproc",  # no cgroups here
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/filetxt",  # what `sacct --completion` reads
            "JobCompLoc": f"{folder}/log/jobcomp.txt",
            "SchedulerType": "sched/backfill",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",  # CPUs are what jobs share out; memory is not enforced
            "SlurmdParameters": "config_overrides",  # the node is what this file says, whatever the hardware
            "ReturnToService": "2",
            "MpiDefault": "none",
            "KillWait": "5",
            "MinJobAge": "600",
            "SlurmctldTimeout": "60",
            "SlurmdTimeout": "60",
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines += [f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} "
                  f"RealMemory={machineMemoryMiB()} State=UNKNOWN",
                  f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP"]
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _startMunge(self):
        if not os.path.exists(MUNGE_KEY):  # Debian's package makes one; a bare system may lack it
            os.makedirs(os.path.dirname(MUNGE_KEY), exist_ok=True)
            with open(MUNGE_KEY, "wb") as handle:
                handle.write(os.urandom(1024))
            shutil.chown(MUNGE_KEY, "munge", "munge")
            os.chmod(MUNGE_KEY, 0o400)
        folder = os.path.dirname(self.mungeSocket)
        os.makedirs(folder, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
        os.chmod(folder, 0o755)
        self._spawn("munged", ["munged", "--foreground", "--socket", self.mungeSocket,
                               "--pid-file", os.path.join(folder, "munged.pid"),
                               "--seed-file", os.path.join(folder, "munged.seed"),
                               "--log-file", os.path.join(self.folder, "log", "munged.log"),
                               "--key-file", MUNGE_KEY], user="munge")
        self._waitFor(lambda: os.path.exists(self.mungeSocket), "munged's socket exists")

    def _spawn(self, name, command, user=None):
        log = open(os.path.join(self.folder, "log", f"{name}.out"), "w")
        program = shutil.which(command[0], path=_sbinPath())
        self.processes[name] = subprocess.Popen([program, *command[1:]], stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, user=user, env=self._env(),
                                                start_new_session=True)
        log.close()

    def _env(self):
        return {**os.environ, **self.environment}

    def _client(self, program, *arguments):
        return subprocess.run([program, *arguments], capture_output=True, text=True, env=self._env(), timeout=60)

    def _nodeIdle(self):
        result = self._client("sinfo", "-h", "-n", self.node, "-o", "%t")
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _stepPids(self):
        result = self._client("scontrol", "listpids")
        return [line for line in result.stdout.splitlines()[1:] if line.strip()] if result.returncode == 0 else []

    def _waitFor(self, condition, what, seconds=START_SECONDS):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode} while waiting until "
                                       f"{what}:\n{self.logTail()}")
            if condition():
                return
            time.sleep(0.5)
        raise RuntimeError(f"waited {seconds} s until {what}, in vain:\n{self.logTail()}")


def _freePort():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _parseTime(text):
    from datetime import datetime
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def measureStartLatency(calls=20):
    """Seconds from sbatch to the first line of the job, for `calls` jobs one after the other on a fresh cluster,
    with the job options of HOSTS_CONF (1 CPU, no GPU)."""
    latencies = []
    with SlurmCluster() as cluster:
        folder = os.path.join(cluster.folder, "latency")
        os.makedirs(folder)
        for index in range(calls):
            stamp = os.path.join(folder, f"{index}.start")
            script = os.path.join(folder, f"{index}.job")
            with open(script, "w") as handle:
                handle.write(f"#!/bin/bash\n#SBATCH --job-name=latency-{index}\n#SBATCH --output={folder}/{index}.out\n"
                             f"#SBATCH --partition={PARTITION}\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n"
                             f"#SBATCH --mem=2048\n#SBATCH --time=1:00:00\n#SBATCH --gres=gpu:0\n"
                             f"date +%s.%N > {stamp}.part && mv {stamp}.part {stamp}\n")
            submitted = time.time()
            result = cluster._client("sbatch", script)
            if result.returncode:
                raise RuntimeError(f"sbatch failed: {result.stderr.strip()}")
            deadline = time.monotonic() + 120
            while not os.path.exists(stamp):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {index} did not start within 120 s:\n{cluster.logTail()}")
                time.sleep(0.01)
            with open(stamp) as handle:
                latencies.append(float(handle.read()) - submitted)
            while cluster.queuedJobs():
                time.sleep(0.1)
    shutil.rmtree(cluster.folder, ignore_errors=True)
    return latencies


if __name__ == "__main__":
    # python3 cryodiffseg_scipion/tests/slurm_cluster.py [calls]: the submission-to-start latency (root)
    import statistics
    import sys

    values = measureStartLatency(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(f"sbatch -> job start over {len(values)} jobs: median {statistics.median(values):.2f} s, "
          f"min {min(values):.2f} s, max {max(values):.2f} s")
    print(" ".join(f"{value:.2f}" for value in values))
