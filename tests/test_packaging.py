"""The installed package (a wheel, as in the engine image) holds every module, not only the editable checkout."""

from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parent.parent


def test_every_module_folder_is_a_package():
    packaged = set(find_packages(str(REPO), include=["cryodiffseg", "cryodiffseg.*"]))
    folders = {path.parent.relative_to(REPO) for path in (REPO / "cryodiffseg").rglob("*.py")}
    missing = sorted(".".join(folder.parts) for folder in folders if ".".join(folder.parts) not in packaged)
    assert missing == [], f"folders without __init__.py are left out of the wheel: {missing}"
