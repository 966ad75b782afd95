"""CryoDiffSeg engine: unsupervised segmentation of cellular cryo-electron tomograms.

The engine runs without Scipion (it is what the container runs); the Scipion plugin
``cryodiffseg_scipion`` only builds its command lines.
"""

__version__ = "0.1.0"
