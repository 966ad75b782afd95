import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', Path("cryodiffseg/__init__.py").read_text()).group(1)

# The engine's machine-learning stack. Install torch first on its own (`pip install torch==2.13.0` takes the
# CPU wheel on CPU machines); a range that the installed torch satisfies installs nothing more.
ENGINE = [
    "torch>=2.2",
    "diffusers>=0.35,<0.43",
    "accelerate>=0.30",
    "transformers>=4.45,<6",
    "safetensors>=0.4",
    # cellpose 3.x: no torchvision (whose PyPI build breaks beside a CPU torch, and then breaks diffusers).
    "cellpose>=3.1.1,<4",
    "numpy>=1.24",
    "scipy>=1.10",
    "scikit-image>=0.21",
    "opencv-python-headless>=4.8",
    "mrcfile>=1.4",
    "tifffile>=2023.1",
    "matplotlib>=3.7",
]

setup(
    name="cryodiffseg",
    version=version,
    description="Unsupervised segmentation of cellular cryo-electron tomograms with diffusion-model attention",
    long_description=Path("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["cryodiffseg", "cryodiffseg.*", "cryodiffseg_scipion", "cryodiffseg_scipion.*"]),
    package_data={
        # the shipped compact backbone (safetensors weights, configs, recipe, model card)
        "cryodiffseg": ["compact/shipped/*.json", "compact/shipped/*.md", "compact/shipped/*/*"],
        # the Scipion plugin: where its protocols appear in the GUI, and its logo
        "cryodiffseg_scipion": ["protocols.conf", "logo.png"],
    },
    install_requires=["numpy>=1.24"],
    extras_require={
        "engine": ENGINE,
        "test": ["pytest>=7", "pytest-timeout>=2"],
        # the plugin runs inside Scipion's own environment (these versions are the ones tested)
        "scipion": ["scipion-pyworkflow>=3.11", "scipion-em>=3.11", "scipion-em-tomo>=3.12"],
    },
    entry_points={
        "console_scripts": ["cryodiffseg = cryodiffseg.cli:main"],
        "pyworkflow.plugin": ["cryodiffseg_scipion = cryodiffseg_scipion"],
    },
    license="MIT",
)
