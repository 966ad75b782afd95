"""Form wizards: the slabs of the pseudo-label protocol, proposed from the input tomograms."""

from pyworkflow.wizard import Wizard

from .convert import PROPOSED_SLAB_SLICES, proposeSlabs
from .protocols import ProtCryoDiffSegPseudoLabels

MIDDLE, AUTOMATIC = "middle", "automatic"  # the dialog's answers (its own are the integers 0-5)


class CryoDiffSegSlabsWizard(Wizard):
    """Lists the input tomograms' tsIds and depths, and fills the slabs field with a slab per tomogram: its
    middle slices or 'auto', as the user picks (users otherwise learn the tsIds from the validation message)."""

    _targets = [(ProtCryoDiffSegPseudoLabels, ["slabs"])]

    def show(self, form, *params):
        from pyworkflow.gui.dialog import RESULT_CANCEL, GenericDialog, showWarning
        from pyworkflow.utils import Icon

        tomograms = form.protocol.inTomograms.get()
        if tomograms is None:
            showWarning("Slabs", "Choose the representative tomograms first.", form.root)
            return
        depths = tomogramDepths(tomograms)
        dialog = GenericDialog(form.root, "Slabs per tomogram", slabsMessage(depths), Icon.INFO,
                               buttons=[("Middle slices", MIDDLE), ("Automatic", AUTOMATIC),
                                        ("Cancel", RESULT_CANCEL)],
                               default="Middle slices",
                               icons={MIDDLE: Icon.BUTTON_SELECT, AUTOMATIC: Icon.BUTTON_SELECT,
                                      RESULT_CANCEL: Icon.BUTTON_CANCEL})
        if dialog.result in (MIDDLE, AUTOMATIC):
            form.setVar("slabs", proposeSlabs(depths, automatic=dialog.result == AUTOMATIC))


def tomogramDepths(tomograms):
    """{tsId: number of z slices} of a set of tomograms, in tsId order."""
    return {tomo.getTsId(): tomo.getDim()[2] for tomo in tomograms.iterItems(orderBy="_tsId")}


def slabsMessage(depths):
    """What the wizard's dialog says: each tomogram's slices and the two proposals."""
    rows = "\n".join(f"  {tsId}: {depth} slices (0-{depth - 1})" for tsId, depth in depths.items())
    return (f"Input tomograms:\n{rows}\n\n"
            f"Middle slices: the middle {PROPOSED_SLAB_SLICES} slices of each, to edit\n"
            f"(the paper labels about 100 slices of one tomogram).\n"
            f"Automatic: 'auto' for each; the engine chooses a {PROPOSED_SLAB_SLICES}-slice slab\n"
            f"inside the sample, the most typical of the tomogram.")
