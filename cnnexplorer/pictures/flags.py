"""Types for the pictures' CLI flags: each turns the text of a flag into a value, or into
argparse's one-line error. Parsing that the GUI needs too lives in the core (raising
``UserError``); ``flag_type`` adapts it here, so nothing outside the CLI handles argparse errors."""

from __future__ import annotations

import argparse
from typing import Callable, TypeVar

from cnnexplorer.core.errors import UserError

T = TypeVar("T")


def flag_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ``UserError`` becomes the flag's usage error."""

    def parse_flag(text: str) -> T:
        try:
            return parse(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_flag.__name__ = getattr(parse, "__name__", "value")
    return parse_flag


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number "
                                             + (f"from {low} to {high}" if high is not None else f"of at least {low}"))
        return value

    return parse


def numbers(kind: type, count: int | None = None) -> Callable[[str], tuple]:
    """``a,b,c`` → a tuple of ``count`` numbers of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None
        if count is not None and len(values) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got '{text}'")
        return values

    return parse


def units(text: str) -> list[int]:
    from cnnexplorer.core.featurevis.units import parse_units

    return flag_type(parse_units)(text)


def budget(text: str) -> float:
    from cnnexplorer.core.adversarial import parse_eps

    return flag_type(parse_eps)(text)


def suffix(ending: str, refusal: str) -> Callable[[str], str]:
    """A file name that must end in ``ending`` (checked before any work); ``refusal`` says why."""

    def parse(text: str) -> str:
        if not text.lower().endswith(ending):
            raise argparse.ArgumentTypeError(f"{refusal}; not '{text}'")
        return text

    return parse


def add_shared_flags(parser: argparse.ArgumentParser) -> None:
    """Flags several pictures read; each picture documents its own default."""
    from cnnexplorer.core.colormaps import COLORMAPS

    parser.add_argument("--cmap", choices=COLORMAPS,
                        help="colour map (activations default: diverging for signed outputs, else viridis)")
    parser.add_argument("--target", metavar="CLASS", help="target class, as an index or a class name")
    parser.add_argument("--steps", type=int, metavar="N", help="iterations of an optimisation or attack")
