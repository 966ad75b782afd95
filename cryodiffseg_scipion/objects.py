"""Scipion objects of the plugin."""

import pyworkflow.object as pwobj
from pwem.objects import EMObject


class CryoDiffSegModel(EMObject):
    """Models trained by ``cryodiffseg train``: one engine model folder with a membrane U-Net and/or a picker.

    The folder is what ``cryodiffseg segment/pick --model`` read; the fields repeat the metadata the
    protocols need before a run (which targets exist, the training voxel size, the particle size).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._path = pwobj.String(kwargs.get("path"))
        self._targets = pwobj.CsvList()
        self._voxelSize = pwobj.Float()  # Angstrom per voxel of the training data
        self._particleDiameter = pwobj.Float()  # Angstrom; only with a picker
        self._engineVersion = pwobj.String()

    def getPath(self):
        return self._path.get()

    def setPath(self, path):
        self._path.set(path)

    def getTargets(self):
        return list(self._targets)

    def setTargets(self, targets):
        self._targets.set(list(targets))

    def hasTarget(self, target):
        return target in self.getTargets()

    def getVoxelSize(self):
        return self._voxelSize.get()

    def setVoxelSize(self, voxelSize):
        self._voxelSize.set(voxelSize)

    def getParticleDiameter(self):
        return self._particleDiameter.get()

    def setParticleDiameter(self, diameter):
        self._particleDiameter.set(diameter)

    def getEngineVersion(self):
        return self._engineVersion.get()

    def setEngineVersion(self, version):
        self._engineVersion.set(version)

    def __str__(self):
        size = f", {self.getVoxelSize():.2f} Å/px" if self.getVoxelSize() else ""
        return f"CryoDiffSeg model ({' + '.join(self.getTargets()) or 'empty'}{size})"
