"""Robustness curve: accuracy, mean confidence and mean true-class probability against ε, for FGSM and PGD.

One job over a labelled image batch (the built-in validation set, or a folder's images),
attacked in chunks of ``batch_size`` so memory stays bounded. ε = 0 is the clean accuracy (of
the 8-bit images): one forward per chunk, whose probabilities every attack of that chunk is
given as its ``before`` instead of computing them again. Progress is yielded every attack
iteration, so a GUI can cancel between two of them. ``curve_job`` is the whole job the GUI's
Robustness panel runs: load the images its ``CurveOptions`` name, then the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from cnnexplorer.core.adversarial.base import Attack, AttackStep, clean_probabilities
from cnnexplorer.core.adversarial.dataset import BUILTIN, LabelledImages, curve_images
from cnnexplorer.core.adversarial.fgsm import FGSM
from cnnexplorer.core.adversarial.pgd import PGD
from cnnexplorer.core.jobs import Job, Progress, map_items
from cnnexplorer.core.model_handle import ModelHandle

DEFAULT_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
CURVE_ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class RobustnessCurve:
    """Per attack, at each ``eps[i]``: ``accuracy``, ``confidence`` (mean top-1 probability, right or
    wrong: an attacked model is often confidently wrong) and ``true_class`` (mean probability of
    the true class)."""

    eps: tuple[float, ...]
    accuracy: dict[str, tuple[float, ...]]
    confidence: dict[str, tuple[float, ...]]
    true_class: dict[str, tuple[float, ...]]

    def to_json(self) -> dict:
        return {"eps": list(self.eps), **{name: {k: list(v) for k, v in getattr(self, name).items()}
                                          for name in ("accuracy", "confidence", "true_class")}}


@dataclass(frozen=True)
class CurveOptions:
    """The images (``builtin:shapes`` or a folder, at most ``limit``), the budgets and the PGD steps."""

    source: str = BUILTIN
    eps: tuple[float, ...] = DEFAULT_EPS
    steps: int = 10
    limit: int = 200


def curve_job(handle: ModelHandle, options: CurveOptions, seed: int = 0) -> Job[tuple[LabelledImages, RobustnessCurve]]:
    """Load the images, then attack them at every budget; returns them with the curve."""
    data = yield from curve_images(handle, options.source, options.limit)
    curve = yield from robustness_curve(handle.pixel_model(), data.images, data.labels, options.eps,
                                        steps=options.steps, seed=seed)
    return data, curve


def curve_attack(name: str, eps: float, steps: int) -> Attack:
    """FGSM at ``eps``, or PGD at ``eps`` with α = max(ε/4, 1/255) and ``steps`` steps."""
    if name == "fgsm":
        return FGSM(eps)
    if name == "pgd":
        return PGD(eps, alpha=max(eps / 4, 1 / 255), steps=steps)
    raise ValueError(f"robustness curves use {CURVE_ATTACKS}, not {name!r}")


def robustness_curve(model: nn.Module, images: Tensor, labels: Tensor, eps: tuple[float, ...] = DEFAULT_EPS,
                     attacks: tuple[str, ...] = CURVE_ATTACKS, steps: int = 10, batch_size: int = 64,
                     seed: int = 0) -> Job[RobustnessCurve]:
    """Attack every image at every ε > 0 with each attack; yields ``Progress``, returns the curve."""
    budgets = sorted({float(e) for e in eps if e > 0})
    chunks = [(images[i : i + batch_size], labels[i : i + batch_size].cpu()) for i in range(0, len(images), batch_size)]
    total = (len(attacks) * len(budgets) + 1) * len(chunks)
    sums = {(a, e): [0, 0.0, 0.0] for a in attacks for e in budgets}
    clean = [0, 0.0, 0.0]
    before = []
    for done, (x, y) in enumerate(chunks):
        yield Progress(done, total, "clean predictions")
        before.append(clean_probabilities(model, x))
        _accumulate(clean, before[-1].cpu(), y)
    done = len(chunks)
    for name in attacks:
        for e in budgets:
            for (x, y), probs in zip(chunks, before):
                message = f"{name} eps {e * 255:.3g}/255"
                job = curve_attack(name, e, steps).run(model, x, y, seed=seed, before=probs)
                result = yield from map_items(job, lambda item, done=done, message=message: Progress(
                    done, total, f"{message}, step {item.iteration}") if isinstance(item, AttackStep) else None)
                done += 1
                _accumulate(sums[name, e], result.after, y)
    yield Progress(total, total, "done")
    n = max(len(images), 1)
    means = [{a: tuple(s[k] / n for s in [clean, *(sums[a, e] for e in budgets)]) for a in attacks} for k in range(3)]
    return RobustnessCurve((0.0, *budgets), *means)


def _accumulate(sums: list, probs: Tensor, labels: Tensor) -> None:
    top, predicted = probs.max(dim=1)
    sums[0] += int((predicted == labels).sum())
    sums[1] += float(top.sum())
    sums[2] += float(probs.gather(1, labels[:, None]).sum())
