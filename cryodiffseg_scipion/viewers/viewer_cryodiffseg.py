"""Viewers: a tomogram with the masks and coordinates of a CryoDiffSeg run (napari), and pseudo-label QC figures."""

import csv
import os
import shlex
import subprocess
import time

from pyworkflow.protocol import EnumParam, LabelParam
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer, View
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import SetOfCoordinates3D, SetOfTomoMasks

from .. import Plugin
from ..constants import MEMBRANE_PROBABILITIES, NAPARI_VAR
from ..convert import readManifest
from ..protocols import ProtCryoDiffSegPick, ProtCryoDiffSegPseudoLabels, ProtCryoDiffSegSegment

NAPARI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "napari_overlay.py")
NAPARI_START_CHECK_S = 3  # a napari that cannot start fails within this; a working one keeps running
NAPARI_WATCH_MS = 1000  # how often the GUI looks whether a running napari has failed since


class CryoDiffSegViewer(ProtocolViewer):
    """Shows one tomogram at a time with what the run produced for it: masks, probability maps, points."""

    _label = "CryoDiffSeg results"
    _targets = [ProtCryoDiffSegPseudoLabels, ProtCryoDiffSegSegment, ProtCryoDiffSegPick]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        self.tsIds = sorted(self.protocol.inTomograms.get().getTSIds())
        form.addSection(label="Visualization")
        form.addParam("tomogram", EnumParam, choices=self.tsIds, default=0, label="Tomogram")
        form.addParam("displayNapari", LabelParam, label="Open in napari",
                      help="The tomogram with the run's masks, probability maps and coordinates as napari layers.")
        if isinstance(self.protocol, ProtCryoDiffSegPseudoLabels):
            form.addParam("displayQc", LabelParam, label="Quality-control figures",
                          help="Per slab: the slice, its canvas, the membrane pseudo-mask and the pseudo-points.")

    def _getVisualizeDict(self):
        return {"displayNapari": self._showNapari, "displayQc": self._showQc}

    def _selectedTsId(self):
        return self.tsIds[self.tomogram.get()]

    def _showNapari(self, paramName=None):
        tsId = self._selectedTsId()
        command = napariCommand(self.protocol, tsId, self.getProject().getTmpPath())
        if command is None:
            return [self.errorMessage(f"{tsId} has no results in this run (see the failed output or the log).")]
        return [NapariView(command, self.getProject().getTmpPath(f"napari_{tsId}.log"), self.getTkRoot())]

    def _showQc(self, paramName=None):
        tsId = self._selectedTsId()
        if tsId not in self.protocol.getLabelledTsIds():
            return [self.errorMessage(f"{tsId} has no pseudo-labels yet.")]
        return [qcPlotter(self.protocol.getFolder(tsId), tsId)]


def napariCommand(protocol, tsId, tmpFolder):
    """The shell command that opens tsId with the run's outputs in napari, or None if it has none."""
    overlays = []
    for name, output in protocol.iterOutputAttributes():
        if isinstance(output, SetOfTomoMasks):
            item = itemOf(output, tsId)
            if item is not None:
                kind = "--probability" if name == MEMBRANE_PROBABILITIES else "--mask"
                overlays += [kind, os.path.abspath(item.getFileName())]
        elif isinstance(output, SetOfCoordinates3D):
            points = os.path.join(tmpFolder, f"{protocol.getObjId()}_{name}_{tsId}.csv")
            if writePointsCsv(output, tsId, points):
                overlays += ["--points", os.path.abspath(points), "--point-size", str(output.getBoxSize())]
    if not overlays:
        return None
    tomogram = os.path.abspath(itemOf(protocol.inTomograms.get(), tsId).getFileName())
    words = [NAPARI_SCRIPT, tomogram, "--title", f"{protocol.getRunName()}: {tsId}"] + overlays
    return f"{Plugin.getNapariPython()} {' '.join(shlex.quote(word) for word in words)}"


def itemOf(tomoSet, tsId):
    """The item of a set of tomograms (or masks) with this tsId, or None."""
    for item in tomoSet.iterItems(where=f'_tsId="{tsId}"'):
        return item.clone()
    return None


def writePointsCsv(coordinates, tsId, path):
    """Write the coordinates of one tomogram as x,y,z voxels; False when it has none."""
    tomogram = itemOf(coordinates.getPrecedents(), tsId)
    rows = [coordinate.getPosition(BOTTOM_LEFT_CORNER) for coordinate in coordinates.iterCoordinates(volume=tomogram)]
    if not rows:
        return False
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "z"])
        writer.writerows(rows)
    return True


def qcPlotter(folder, tsId):
    """One figure with the engine's QC images of a tomogram, one slab per row."""
    import matplotlib.image as mpimg
    from pyworkflow.gui.plotter import Plotter

    names = readManifest(folder)["outputs"]["qc"]
    plotter = Plotter(x=len(names), y=1, figsize=(14, 4 * len(names)), windowTitle=f"{tsId}: pseudo-label QC")
    for name in names:
        plotter.createSubPlot(name, None, None).imshow(mpimg.imread(os.path.join(folder, "qc", name)))
    return plotter


class NapariView(View):
    """Starts napari in the background and reports when it fails: at once, or later while the user waits."""

    def __init__(self, command, logFile, tkParent=None):
        self.command, self.logFile, self.tkParent = command, logFile, tkParent
        self.process = None

    def show(self):
        failure = self.start()
        if failure:
            self._showFailure(failure)
        elif self.tkParent is not None:
            self.tkParent.after(NAPARI_WATCH_MS, self._watch)

    def start(self):
        """Launch napari; the error to show when it exits with an error at once, else None."""
        with open(self.logFile, "w") as log:
            self.process = subprocess.Popen(self.command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + NAPARI_START_CHECK_S
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.failure()

    def failure(self):
        """The error to show when napari has exited with an error (None while it runs or after a clean exit)."""
        if self.process.poll() is None or not self.process.returncode:
            return None
        with open(self.logFile) as handle:
            tail = handle.read()[-1500:]
        return (f"{tail}\n\nnapari exited with code {self.process.returncode}. Install the tomo plugin's napari "
                f"environment (scipion3 installb napari) or set {NAPARI_VAR} to a command that runs a Python with "
                f"napari and mrcfile, e.g. /opt/napari/bin/python. Full log: {self.logFile}")

    def _watch(self):
        """Polled from the Tk loop: a napari that fails after its start check is reported too."""
        if self.process.poll() is None:
            self.tkParent.after(NAPARI_WATCH_MS, self._watch)
        elif self.process.returncode:
            self._showFailure(self.failure())

    def _showFailure(self, failure):
        from pyworkflow.gui.dialog import showError
        showError("napari failed", failure, self.tkParent)
