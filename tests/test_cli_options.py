"""Every option of every command reaches its own configuration field, and only that one; numbers out of range stop at parsing."""

import pytest

from cryodiffseg.cli import build_parser, pick, pseudolabel, segment, train, train_backbone
from cryodiffseg.cli.options import POSITIVE, _get, apply_options
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
        return str(default + 0.123 if option.range.contains(default + 0.123) else default - 0.123)
    if option.type is int:
        return "13"
    if option.type is float:
        return next(word for word in ("13.5", "0.25") if option.range.contains(float(word)))
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


def _numeric_cases():
    for case in _cases():
        prefix, options, config, option = case.values
        default = _get(config, option.field)
        kind = option.type or type(default)
        if not option.choices and kind in (int, float) and not isinstance(default, bool):
            yield pytest.param(prefix, option, default, kind, id=case.id)


@pytest.mark.parametrize("prefix, option, default, kind", list(_numeric_cases()))
def test_numeric_options_accept_their_default_and_refuse_non_finite_and_out_of_range_values(prefix, option, default, kind, capsys):
    if default is not None:
        args = build_parser().parse_args(prefix + [option.flag, str(default)])
        assert getattr(args, option.flag.lstrip("-").replace("-", "_")) == default
    refused = ["nan", "inf", "-inf"] if kind is float else ["1.5", "ten"]
    low = option.range.low
    if low is not None:
        refused.append(str(low - 1) if kind is int else str(low - 0.5))
        if not option.range.low_inclusive:
            refused.append(str(kind(low)))
    if option.range.high is not None:
        refused.append(str(option.range.high + 1))
    for word in refused:
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(prefix + [f"{option.flag}={word}"])  # "=" lets argparse take "-1" as a value
        assert stopped.value.code == 2, word
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert option.flag in error and f"'{word}'" in error, error


def test_a_zero_learning_rate_or_batch_size_is_refused_with_the_allowed_range(capsys):
    for words in (["--learning-rate", "0"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "p", "--out", "o"] + words)
        assert "the value must be > 0" in capsys.readouterr().err
    assert POSITIVE.describe() == "> 0"


@pytest.mark.parametrize("words", [["synth", "--out", "o", "--snr", "nan"], ["synth", "--out", "o", "--shape", "0", "64", "64"],
                                   ["evaluate", "--points", "a", "--radius", "-2"], ["demo", "--out", "o", "--seed", "-1"]])
def test_plain_numeric_arguments_are_checked_too(words):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(words)
    assert stopped.value.code == 2
