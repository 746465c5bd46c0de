"""One check for every number a user types: finite, and inside the range that makes sense.

Options arrive as floats from the command line and the GUI alike (``nan``, ``inf`` and ``1e300``
included), so each option is checked where its meaning is defined, with its name in the message.
"""

from __future__ import annotations

import math


def check_number(name: str, value: float, low: float | None = None, high: float | None = None, *,
                 above: bool = False, why: str = "") -> float:
    """``value`` if it is finite and in ``[low, high]`` (``(low, high]`` with ``above``); else ``UserError``.

    ``why`` may say what the range means (``"the pixel range is 0 to 1"``).
    """
    from cnnexplorer.core.errors import UserError

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise UserError(f"{name} {value!r} is not usable: give {_wanted(low, high, above)}" + (f" ({why})" if why else ""))
    return value


def _wanted(low: float | None, high: float | None, above: bool) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a number {'above' if above else 'of at least'} {low:g}"
    if low is None:
        return f"a number of at most {high:g}"
    return f"a number above {low:g} and at most {high:g}" if above else f"a number from {low:g} to {high:g}"
