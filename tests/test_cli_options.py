"""Every option of every command reaches its own configuration field, and only that one."""

import pytest

from cryodiffseg.cli import build_parser, pick, pseudolabel, segment, train, train_backbone
from cryodiffseg.cli.options import _get, apply_options
from cryodiffseg.compact.train import BackboneTrainingConfig
from cryodiffseg.picking import PickerTrainingConfig, PickingConfig
from cryodiffseg.pseudolabel.pipeline import PseudoLabelConfig
from cryodiffseg.segmentation import MembraneTrainingConfig, SegmentationConfig

# (command line before the option, [(options, the configuration they fill)])
COMMANDS = {
    "pseudolabel": (["pseudolabel", "t.mrc", "--slabs", "1", "--out", "o"], [(pseudolabel.OPTIONS, PseudoLabelConfig(slabs="1"))]),
    "train": (["train", "p", "--out", "o"], [(train.MEMBRANE_OPTIONS + train.SHARED_OPTIONS, MembraneTrainingConfig()),
                                              (train.PICKER_OPTIONS + train.SHARED_OPTIONS, PickerTrainingConfig())]),
    "segment": (["segment", "t.mrc", "--model", "m", "--out", "o"], [(segment.OPTIONS, SegmentationConfig())]),
    "pick": (["pick", "t.mrc", "--model", "m", "--out", "o"], [(pick.OPTIONS, PickingConfig())]),
    "train-backbone": (["train-backbone", "--out", "o"], [(train_backbone.OPTIONS, BackboneTrainingConfig())]),
}


def _distinct_value(option, default):
    """A command-line word whose parsed value differs from the default."""
    if option.choices:
        return next(c for c in option.choices if c != default)
    if isinstance(default, bool):
        return None  # a flag: --name / --no-name
    if isinstance(default, int) and not isinstance(default, bool):
        return str(default + 7)
    if isinstance(default, float):
        return str(default + 0.123)
    if option.type is int:
        return "13"
    if option.type is float:
        return "13.5"
    return "other-value"


def _cases():
    for command, (prefix, groups) in COMMANDS.items():
        for options, config in groups:
            for option in options:
                yield pytest.param(prefix, options, config, option, id=f"{command} {option.flag}")


@pytest.mark.parametrize("prefix, options, config, option", list(_cases()))
def test_each_option_sets_its_own_field_only(prefix, options, config, option):
    default = _get(config, option.field)
    value = _distinct_value(option, default)
    words = [option.flag if value is not None or not default else "--no-" + option.flag[2:]] + ([value] if value is not None else [])
    args = build_parser().parse_args(prefix + words)
    filled = apply_options(args, options, config)
    assert _get(filled, option.field) != default
    for other in options:
        if other.field != option.field:
            assert _get(filled, other.field) == _get(config, other.field), f"{option.flag} changed {other.flag}"


def test_membrane_and_picker_iterations_and_batch_sizes_stay_apart():
    args = build_parser().parse_args(["train", "p", "--out", "o", "--iterations", "111", "--picker-iterations", "222",
                                      "--batch-size", "3", "--picker-batch-size", "5"])
    membranes = apply_options(args, train.MEMBRANE_OPTIONS, MembraneTrainingConfig())
    picker = apply_options(args, train.PICKER_OPTIONS, PickerTrainingConfig())
    assert (membranes.iterations, membranes.batch_size) == (111, 3)
    assert (picker.iterations, picker.batch_size) == (222, 5)


def test_option_flags_are_unique_per_command():
    for command, (_, groups) in COMMANDS.items():
        flags = [option.flag for options, _ in groups for option in options]
        shared = {option.flag for option in train.SHARED_OPTIONS} if command == "train" else set()
        assert len(set(flags) - shared) == len([f for f in flags if f not in shared]), command
