"""Command-line options declared once as (flag -> field of a configuration dataclass).

Defaults and types come from the dataclass, so the help text always shows the values the engine uses,
and a command fills a configuration object instead of passing dozens of arguments around.
"""

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass(frozen=True)
class Option:
    flag: str
    field: str  # dotted path in the configuration object, e.g. "masks.threshold_block"
    help: str
    type: Optional[Callable[[str], Any]] = None  # default: the type of the dataclass default
    choices: Optional[Sequence[str]] = None


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
            option.flag, dest=dest, type=kind, choices=option.choices, default=argparse.SUPPRESS,
            metavar=None if option.choices else kind.__name__.upper().replace("STR", "TEXT"),
            help=f"{option.help} (default: {shown})",
        )


def apply_options(args: argparse.Namespace, options: Sequence[Option], config):
    for option in options:
        dest = _dest(option)
        if hasattr(args, dest):
            config = _set(config, option.field, getattr(args, dest))
    return config
