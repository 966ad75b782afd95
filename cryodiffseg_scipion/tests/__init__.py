"""The plugin's tests, where Scipion looks for them: `scipion3 tests cryodiffseg_scipion.tests`.

Plain unittest (Scipion's runner; pytest also collects them). Tests that run the engine take it from the
plugin's CRYODIFFSEG_ENGINE and are skipped, saying so, where that command does not exist.
"""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def load_tests(loader, tests, pattern):
    """Loading the package by name (`scipion3 tests cryodiffseg_scipion.tests`) loads its test modules too;
    discovery from the plugin's folder (`scipion3 tests`, `--grep`) reaches them through here as well."""
    topLevel = os.path.dirname(os.path.dirname(PACKAGE_DIR))  # modules keep their cryodiffseg_scipion.tests name
    tests.addTests(loader.discover(PACKAGE_DIR, pattern=pattern or "test*.py", top_level_dir=topLevel))
    return tests
