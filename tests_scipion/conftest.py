"""Headless Scipion for the plugin tests: fresh folders, read by pyworkflow at import, so set before any import.

The plugin tests run in the Scipion environment (pyworkflow, pwem, tomo; never torch). The engine runs as
the command CRYODIFFSEG_ENGINE (e.g. the cryodiffseg of the engine's virtual environment); tests that need
it are skipped when that variable is not set.
"""

import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = tempfile.mkdtemp(prefix="cryodiffseg-scipion-tests-")

os.makedirs(os.path.join(SCRATCH, "home", "config"))
os.environ.update({
    "SCIPION_DOMAIN": "pwem",
    "SCIPION_HOME": os.path.join(SCRATCH, "home"),
    "SCIPION_USER_DATA": os.path.join(SCRATCH, "data"),
    "SCIPION_TESTS": os.path.join(SCRATCH, "tests"),
    "SCIPION_TEST_NOSYNC": "1",
    "SCIPION_PYTHON": sys.executable,  # protocols run in a subprocess with this interpreter
    "CRYODIFFSEG_RUNTIME": "local",
})
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP spin-waiting on small shared machines
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
# Protocol subprocesses must import the plugin from this checkout even when it is not installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def pytest_report_header():
    return f"Scipion test folders: {SCRATCH}; engine: {os.environ.get('CRYODIFFSEG_ENGINE', 'not set')}"


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not os.environ.get("CRYODIFFSEG_TEST_KEEP"):
        shutil.rmtree(SCRATCH, ignore_errors=True)  # kept after a failure: the protocol logs are in it
