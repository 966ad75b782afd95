"""Command-line options declared once as (flag -> field of a configuration dataclass).

Defaults and types come from the dataclass, so the help text always shows the values the engine uses,
and a command fills a configuration object instead of passing dozens of arguments around. Numbers are
checked at parse time: finite and inside the option's range, so NaN or a negative size never reaches a
long run.
"""

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric option; ``None`` leaves that side open."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        return self.high is None or value < self.high or (value == self.high and self.high_inclusive)

    def describe(self) -> str:
        low = "" if self.low is None else f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        high = "" if self.high is None else f"{'<=' if self.high_inclusive else '<'} {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "finite"


NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_inclusive=False)
FRACTION = Range(0, 1)
ANY = Range()


def number(kind: Callable[[str], Any], allowed: Range = NON_NEGATIVE) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the word, refused unless finite and in ``allowed``."""

    def parse(word: str):
        try:
            value = kind(word)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: '{word}'") from None
        if not math.isfinite(value) or not allowed.contains(value):
            raise argparse.ArgumentTypeError(f"'{word}' is not allowed: the value must be {allowed.describe()}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages and the metavar
    return parse


@dataclass(frozen=True)
class Option:
    flag: str
    field: str  # dotted path in the configuration object, e.g. "masks.threshold_block"
    help: str
    type: Optional[Callable[[str], Any]] = None  # default: the type of the dataclass default
    choices: Optional[Sequence[str]] = None
    range: Range = NON_NEGATIVE  # numeric options only


def _get(config, path: str):
    for name in path.split("."):
        config = getattr(config, name)
    return config


def _set(config, path: str, value):
    """Return ``config`` with the dotted field replaced (works with frozen dataclasses)."""
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _set(getattr(config, head), rest, value)})


def _dest(option: Option) -> str:
    """The argparse destination, from the flag: two flags filling same-named fields of different
    configurations (``--iterations``, ``--picker-iterations``) must never share one."""
    return option.flag.lstrip("-").replace("-", "_")


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option], defaults) -> None:
    for option in options:
        default = _get(defaults, option.field)
        dest = _dest(option)
        if isinstance(default, bool) and option.type is None:
            parser.add_argument(
                option.flag, dest=dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=f"{option.help} (default: {'on' if default else 'off'})",
            )
            continue
        kind = option.type or (type(default) if default is not None else str)
        shown = "automatic" if default is None else default
        parser.add_argument(
            option.flag, dest=dest, type=number(kind, option.range) if kind in (int, float) else kind,
            choices=option.choices, default=argparse.SUPPRESS,
            metavar=None if option.choices else kind.__name__.upper().replace("STR", "TEXT"),
            help=f"{option.help} (default: {shown})",
        )


def apply_options(args: argparse.Namespace, options: Sequence[Option], config):
    for option in options:
        dest = _dest(option)
        if hasattr(args, dest):
            config = _set(config, option.field, getattr(args, dest))
    return config
