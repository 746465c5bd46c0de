"""The course's design trade-offs, counted: small stacked kernels, bottlenecks, factorised and
depthwise-separable convolutions, inception's 1×1 reductions.

Each function returns a ``Tradeoff``: the layers before and after with their counts and
formulas, the totals and the saving, so the lab can show the course's figures next to the
same arithmetic for the user's own sizes. Counts follow the course: weights (plus biases where
its formula has them, as in 49C² + C) and multiplications (MACs) at the output size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnexplorer.core.checks import check_number
from cnnexplorer.core.errors import UserError


@dataclass(frozen=True)
class Term:
    """One layer of a design: what it is, its count and the formula that gives it."""

    label: str
    count: int
    formula: str


@dataclass(frozen=True)
class Tradeoff:
    """Two designs of the same job: ``before`` (the costly one) and ``after``.

    ``unit`` is "parameters" or "operations" (multiplications); ``coefficients`` the totals per C²
    where the course counts in C² (49 and 27), else None; ``course`` is the course's figure as it
    states it; ``facts`` holds further figures (receptive fields, the other unit's totals); ``note``
    says where the course's printed figure departs from its own terms (empty when it does not).
    """

    name: str
    title: str
    unit: str
    before_label: str
    after_label: str
    before: tuple[Term, ...]
    after: tuple[Term, ...]
    coefficients: tuple[float, float] | None
    course: str
    facts: dict = field(default_factory=dict)
    note: str = ""

    @property
    def before_total(self) -> int:
        return sum(t.count for t in self.before)

    @property
    def after_total(self) -> int:
        return sum(t.count for t in self.after)

    @property
    def saving(self) -> float:
        """The fraction the second design saves: 1 − after/before."""
        return 1 - self.after_total / self.before_total

    def to_json(self) -> dict:
        terms = lambda ts: [{"label": t.label, "count": t.count, "formula": t.formula} for t in ts]  # noqa: E731
        return {"name": self.name, "title": self.title, "unit": self.unit, "before_label": self.before_label,
                "after_label": self.after_label, "before": terms(self.before), "after": terms(self.after),
                "before_total": self.before_total, "after_total": self.after_total, "saving": self.saving,
                "coefficients": list(self.coefficients) if self.coefficients else None, "course": self.course,
                "facts": self.facts, "note": self.note}


def _channels(channels: int, even: bool = False) -> int:
    check_number("channels", channels, 2 if even else 1, whole=True)
    if even and channels % 2:
        raise UserError(f"channels must be even for the bottleneck, which halves them, not {channels}")
    return channels


def conv_params(kh: int, kw: int, c_in: int, c_out: int, bias: bool) -> int:
    return c_out * (kh * kw * c_in + int(bias))


def stacked_receptive_fields(layers: int = 3, kernel: int = 3) -> list[int]:
    """Receptive field after each of ``layers`` stacked stride-1 convolutions: 3, 5, 7 for 3×3."""
    return [1 + (kernel - 1) * (i + 1) for i in range(layers)]


def seven_vs_three(channels: int = 64) -> Tradeoff:
    """One 7×7 convolution against three stacked 3×3 (C maps in and out, with biases): 49C² + C vs 27C² + 3C."""
    c = _channels(channels)
    seven = Term(f"7×7 conv, {c} → {c}", conv_params(7, 7, c, c, True), f"{c}·(7·7·{c} + 1)")
    three = tuple(Term(f"3×3 conv {i + 1}, {c} → {c}", conv_params(3, 3, c, c, True), f"{c}·(3·3·{c} + 1)")
                  for i in range(3))
    return Tradeoff("seven_vs_three", "one 7×7 or three 3×3 convolutions", "parameters", "one 7×7", "three 3×3",
                    (seven,), three, (49.0, 27.0), "49C² + C vs 27C² + 3C: 45 % fewer parameters, same 7×7 view",
                    {"receptive_fields": stacked_receptive_fields(), "nonlinearities": (1, 3)})


def bottleneck(channels: int = 64) -> Tradeoff:
    """A 3×3 convolution on C maps against the 1×1 (C → C/2), 3×3 (C/2 → C/2), 1×1 (C/2 → C) sandwich;
    weights only, as the course counts it: 9C² → 3.25C²."""
    c = _channels(channels, even=True)
    h = c // 2
    before = (Term(f"3×3 conv, {c} → {c}", conv_params(3, 3, c, c, False), f"3·3·{c}·{c}"),)
    after = (Term(f"1×1 conv, {c} → {h}", conv_params(1, 1, c, h, False), f"{c}·{h}"),
             Term(f"3×3 conv, {h} → {h}", conv_params(3, 3, h, h, False), f"3·3·{h}·{h}"),
             Term(f"1×1 conv, {h} → {c}", conv_params(1, 1, h, c, False), f"{h}·{c}"))
    return Tradeoff("bottleneck", "the bottleneck: 1×1 down, 3×3, 1×1 up", "parameters", "3×3 conv", "bottleneck",
                    before, after, (9.0, 3.25), "9C² → 3.25C² (C/2 in the middle)")


def factorised(channels: int = 64) -> Tradeoff:
    """A 3×3 convolution against a 1×3 followed by a 3×1 (C maps, weights only): 9C² → 6C²."""
    c = _channels(channels)
    return Tradeoff("factorised", "3×3 as 1×3 then 3×1", "parameters", "3×3 conv", "1×3 + 3×1",
                    (Term(f"3×3 conv, {c} → {c}", conv_params(3, 3, c, c, False), f"3·3·{c}·{c}"),),
                    (Term(f"1×3 conv, {c} → {c}", conv_params(1, 3, c, c, False), f"1·3·{c}·{c}"),
                     Term(f"3×1 conv, {c} → {c}", conv_params(3, 1, c, c, False), f"3·1·{c}·{c}")),
                    (9.0, 6.0), "9C² → 6C², the same 3×3 view")


def depthwise_separable(size: int = 12, in_channels: int = 3, out_channels: int = 256, kernel: int = 5) -> Tradeoff:
    """A standard convolution against a depthwise one (one kernel per input channel) and a 1×1
    pointwise one, weights only. The course's example: a 12×12×3 input, 256 filters of 5×5 →
    8×8×256: 19,200 against 843 parameters (1,228,800 against 53,952 multiplications)."""
    for name, value in (("size", size), ("in channels", in_channels), ("out channels", out_channels),
                        ("kernel", kernel)):
        check_number(name, value, 1, whole=True)
    check_number("kernel", kernel, 1, size, whole=True, why="it must fit in the input")
    out = size - kernel + 1
    k, ci, co = kernel, in_channels, out_channels
    standard = Term(f"{k}×{k} conv, {ci} → {co}", k * k * ci * co, f"{k}·{k}·{ci}·{co}")
    depthwise = Term(f"{k}×{k} depthwise, {ci} maps", k * k * ci, f"{k}·{k}·{ci}")
    pointwise = Term(f"1×1 pointwise, {ci} → {co}", ci * co, f"{ci}·{co}")
    macs = {"before": out * out * k * k * ci * co, "after": out * out * k * k * ci + out * out * ci * co,
            "output": f"{out}×{out}×{co}"}
    return Tradeoff("depthwise_separable", "depthwise-separable convolution", "parameters", "standard",
                    "depthwise + pointwise", (standard,), (depthwise, pointwise), None,
                    "19,200 vs 843 parameters (12×12×3 input, 256 filters of 5×5)", {"macs": macs})


def inception_reduction(size: int = 28, in_channels: int = 256, branches: tuple[int, int, int] = (128, 192, 96),
                        reductions: tuple[int, int, int] = (64, 64, 64)) -> Tradeoff:
    """Inception's naive module (1×1, 3×3 and 5×5 convolutions and a 3×3 pool on a 28×28×256 input,
    128, 192 and 96 maps) against the module with 1×1 reductions to 64 maps before the 3×3 and 5×5
    and after the pool, in multiplications: 854 M naive. ``reductions`` = (before 3×3, before 5×5,
    after pool)."""
    check_number("size", size, 1, whole=True)
    for value in (in_channels, *branches, *reductions):
        check_number("channels", value, 1, whole=True)
    n, c = size, in_channels
    (c1, c3, c5), (r3, r5, rp) = branches, reductions

    def ops(label: str, out: int, k: int, c_in: int) -> Term:
        return Term(label, n * n * out * k * k * c_in, f"{n}×{n}×{out}×{k}×{k}×{c_in}")

    naive = (ops(f"1×1 conv, {c1}", c1, 1, c), ops(f"3×3 conv, {c3}", c3, 3, c), ops(f"5×5 conv, {c5}", c5, 5, c))
    reduced = (ops(f"1×1 conv, {r3} (before the 3×3)", r3, 1, c), ops(f"1×1 conv, {r5} (before the 5×5)", r5, 1, c),
               ops(f"1×1 conv, {c1}", c1, 1, c), ops(f"3×3 conv, {c3}", c3, 3, r3), ops(f"5×5 conv, {c5}", c5, 5, r5),
               ops(f"1×1 conv, {rp} (after the pool)", rp, 1, c))
    printed = sum(t.count for t in reduced) + reduced[3].count
    note = ""
    if (size, in_channels, branches, reductions) == (28, 256, (128, 192, 96), (64, 64, 64)):
        note = (f"the course prints 358 M for the reduced module, but its six terms add up to "
                f"{sum(t.count for t in reduced) / 1e6:.0f} M; 358 M ({printed:,}) is that sum with the 3×3 "
                "term counted twice")
    return Tradeoff("inception_reduction", "inception's 1×1 reductions", "operations", "naive module",
                    "with 1×1 reductions", naive, reduced, None, "854 M → 358 M operations",
                    {"output": f"{n}×{n}×{c1 + c3 + c5 + c} naive, {n}×{n}×{c1 + c3 + c5 + rp} reduced",
                     "course_printed_after": printed if note else None}, note)


TRADEOFFS = {f.__name__: f for f in (seven_vs_three, bottleneck, factorised, depthwise_separable,
                                     inception_reduction)}
"""name → function with the course's example as its defaults."""
