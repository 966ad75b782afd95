"""pytest in Scipion's environment (the plugin tests, cryodiffseg_scipion/tests): a headless Scipion in fresh
folders. A no-op in the engine's environment, which has no pyworkflow.

This sits at the repository root, not beside the tests: pyworkflow reads its folders once, at import, and
pytest imports the plugin package (hence pyworkflow) before a conftest inside it. Scipion's own runner
(`scipion3 tests cryodiffseg_scipion.tests`) needs none of this: it runs the same tests in the user's
Scipion, whose projects they delete when done. The engine is the plugin's CRYODIFFSEG_ENGINE.
"""

import importlib.util
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.abspath(__file__))
SCRATCH = None

if importlib.util.find_spec("pyworkflow") is not None:
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
    if SCRATCH:
        return f"Scipion test folders: {SCRATCH}; engine: {os.environ.get('CRYODIFFSEG_ENGINE', 'not set')}"


def pytest_sessionfinish(session, exitstatus):
    # Kept after a failure, and with CRYODIFFSEG_TEST_KEEP set (which also keeps the projects and their logs).
    if SCRATCH and exitstatus == 0 and not os.environ.get("CRYODIFFSEG_TEST_KEEP"):
        shutil.rmtree(SCRATCH, ignore_errors=True)
