"""One check for every setting a user gives, from the CLI, the GUI or a file: one message shape for all.

Each check raises ``UserError`` naming the option, what it must be, and the value it got, so a NaN,
an infinity, ``1e300``, a negative count or a value of the wrong type is refused where the option's
meaning is defined, before any work starts.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from cnnexplorer.core.errors import UserError


def check_number(name: str, value, low: float, high: float = math.inf, *, whole: bool = False,
                 open_low: bool = False, open_high: bool = False, why: str = ""):
    """``value`` if it is a finite number (an integer if ``whole``) from ``low`` to ``high`` (ends
    excluded if open); else ``UserError``. ``why`` may say what the range means."""
    kind = Integral if whole else Real
    if isinstance(value, kind) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        above = number > low if open_low else number >= low
        below = number < high if open_high else number <= high
        if math.isfinite(number) and above and below:
            return value
    if high == math.inf:
        span = f"{'above' if open_low else 'at least'} {_show(low)}"
    else:
        span = f"in {'(' if open_low else '['}{_show(low)}, {_show(high)}{')' if open_high else ']'}"
    reason = f" ({why})" if why else ""
    raise UserError(f"{name} must be a {'whole' if whole else 'finite'} number {span}, not {value!r}{reason}")


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise UserError(f"{name} must be true or false, not {value!r}")
