"""How well a model does on a labelled probe set: top-1 and top-5 accuracy, per-class accuracy, the
confusion matrix (whose cells list their images) and the most confident mistakes.

The set's label names are matched to the model's class names by name (exactly, then ignoring case),
never by position: a folder ``dogs/`` is the model's ``dogs`` class wherever either sorts it. Images
whose label names no class are left out and named; a set none of whose labels is a class is refused.
The figures come from each image's label and top-5 predictions, read from a ``DatasetIndex`` or from
one plain pass (``evaluate_job``) that needs no index. Under torchrun that pass is shared: each rank
predicts its contiguous part of the set (``shard_range``), the per-image labels and predictions are
gathered in rank order, which is dataset order, and every rank builds the same ``Evaluation`` from them
as a single process would (counts and the confusion matrix come from the gathered per-image records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress

if TYPE_CHECKING:
    from cnnexplorer.core.dataset.index_types import DatasetIndex
    from cnnexplorer.core.model_handle import ModelHandle

TOP = 5  # predictions kept per image, as the index keeps them


def image_reference(source: str, data_spec: str, i: int) -> str | int:
    """How reports name image ``i`` of a set: its file's path for folder data, else its number."""
    return i if source in ("", f"{data_spec}#{i}") else source


def match_labels(label_names: list[str] | None, class_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each label's model class (``-1``: none) and the labels that name no class.

    A label matches the class of the same name, else the one class whose name equals it ignoring case.
    ``UserError`` for an unlabelled set or one whose labels name none of the model's classes.
    """
    if label_names is None:
        raise UserError("this data has no labels, so there is nothing to compare the predictions with; use a folder "
                        "with one sub-folder of images per class (named as the model's classes) or a labelled data spec")
    exact = {name: i for i, name in enumerate(class_names)}
    lowered: dict[str, list[int]] = {}
    for i, name in enumerate(class_names):
        lowered.setdefault(name.lower(), []).append(i)
    mapping = np.full(len(label_names), -1, dtype=np.int64)
    for j, name in enumerate(label_names):
        if name in exact:
            mapping[j] = exact[name]
        elif len(lowered.get(name.lower(), ())) == 1:
            mapping[j] = lowered[name.lower()][0]
    unmatched = [name for name, m in zip(label_names, mapping) if m < 0]
    if label_names and len(unmatched) == len(label_names):
        shown = ", ".join(class_names[:5]) + (" …" if len(class_names) > 5 else "")
        raise UserError(f"the data's labels ({_listed(label_names)}) match none of the model's classes ({shown}); "
                        "name the class folders as the model's classes, or evaluate a model trained on these labels")
    return mapping, unmatched


def _listed(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


@dataclass(frozen=True)
class Mistake:
    """An image the model got wrong: its true class, its top-1 class and that class's probability."""

    image: int
    label: int
    predicted: int
    prob: float


@dataclass
class Evaluation:
    """Predictions against labels, both as the model's class indices.

    ``labels[i]`` is image ``i``'s true class, ``-1`` when it has none or its label names no class
    (then it is left out of every figure); ``top5[i]`` its predicted classes, most probable first.
    """

    class_names: list[str]
    labels: np.ndarray  # int64 [N]
    top5: np.ndarray  # int64 [N, ≤5]
    top5_probs: np.ndarray  # float32 [N, ≤5]
    data_spec: str = ""
    sources: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # the set's labels that name no class
    unlabelled: int = 0  # images with no label at all (lying directly in a folder of class folders)
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable files: path -> why

    def __post_init__(self):
        self._used = np.flatnonzero(self.labels >= 0)
        truth, top = self.labels[self._used], self.top5[self._used]
        self._right1 = top[:, 0] == truth if len(top) else np.zeros(0, bool)
        self._right5 = (top == truth[:, None]).any(axis=1) if len(top) else np.zeros(0, bool)
        k = len(self.class_names)
        self.confusion = np.zeros((k, k), dtype=np.int64)  # rows: true class, columns: top-1 class
        np.add.at(self.confusion, (truth, top[:, 0]), 1)

    @property
    def count(self) -> int:
        """Images evaluated (labelled, with a label that names a class)."""
        return int(len(self._used))

    @property
    def left_out(self) -> int:
        """Images left out: unlabelled, or with a label that names no class of the model."""
        return int(len(self.labels) - len(self._used))

    @property
    def top1(self) -> float:
        return float(self._right1.mean()) if self.count else float("nan")

    @property
    def top5_accuracy(self) -> float:
        return float(self._right5.mean()) if self.count else float("nan")

    def per_class(self) -> dict[int, tuple[int, float]]:
        """Class → (images of it, top-1 accuracy on them), for each class with images."""
        totals = self.confusion.sum(axis=1)
        return {int(c): (int(totals[c]), float(self.confusion[c, c] / totals[c])) for c in np.flatnonzero(totals)}

    def cell(self, true: int, predicted: int) -> np.ndarray:
        """The images of class ``true`` the model called ``predicted`` (a confusion cell), in set order."""
        chosen = self._used[(self.labels[self._used] == true) & (self.top5[self._used, 0] == predicted)]
        return chosen.astype(np.int64)

    def mistakes(self, most: int | None = None) -> list[Mistake]:
        """The wrong top-1 predictions, most confident first (then in set order)."""
        wrong = self._used[~self._right1]
        order = wrong[np.lexsort((wrong, -self.top5_probs[wrong, 0].astype(np.float64)))]
        return [Mistake(int(i), int(self.labels[i]), int(self.top5[i, 0]), float(self.top5_probs[i, 0]))
                for i in order[:most]]

    def shown_classes(self) -> list[int]:
        """The classes a label or a top-1 prediction names, in the model's order (all of a small model's)."""
        return [int(c) for c in np.flatnonzero(self.confusion.sum(axis=0) + self.confusion.sum(axis=1))]

    def image(self, i: int) -> str | int:
        return image_reference(self.sources[i] if i < len(self.sources) else "", self.data_spec, i)

    def to_json(self, mistakes: int = 20) -> dict:
        """The ``evaluate --json`` report; ``classes``/``confusion`` keep only ``shown_classes``."""
        shown = self.shown_classes()
        names = self.class_names
        return {
            "count": self.count, "top1": self.top1, "top5": self.top5_accuracy,
            "classes": [names[c] for c in shown],
            "confusion": self.confusion[np.ix_(shown, shown)].tolist(),
            "per_class": [{"class": names[c], "count": n, "accuracy": acc} for c, (n, acc) in self.per_class().items()],
            "mistakes": [{"image": self.image(m.image), "label": names[m.label], "predicted": names[m.predicted],
                          "prob": m.prob} for m in self.mistakes(mistakes)],
            "unmatched_labels": list(self.unmatched), "left_out": self.left_out, "unlabelled": self.unlabelled,
            "skipped": dict(self.skipped),
        }


def evaluation_of(labels: np.ndarray, label_names: list[str] | None, class_names: list[str], top5: np.ndarray,
                  top5_probs: np.ndarray, **extra) -> Evaluation:
    """The evaluation of predictions against labels given as indices into ``label_names``."""
    mapping, unmatched = match_labels(label_names, class_names)
    labels = np.asarray(labels, dtype=np.int64)
    truth = np.full(len(labels), -1, dtype=np.int64)
    truth[labels >= 0] = mapping[labels[labels >= 0]]
    if not (truth >= 0).any():
        raise UserError("no image of this data has a label the model knows, so nothing can be evaluated; "
                        "give a folder with one sub-folder of images per class")
    return Evaluation(list(class_names), truth, np.asarray(top5, dtype=np.int64),
                      np.asarray(top5_probs, dtype=np.float32), unmatched=unmatched,
                      unlabelled=int((labels < 0).sum()), **extra)


def evaluate_index(index: DatasetIndex) -> Evaluation:
    """The evaluation an index already holds (its labels and top-5 predictions)."""
    return evaluation_of(index.labels, index.label_names, index.class_names, index.top5, index.top5_probs,
                         data_spec=index.data_spec, sources=list(index.sources), skipped=dict(index.skipped))


def evaluate_job(handle: ModelHandle, probe, batch_size: int = 64) -> Job[Evaluation]:
    """One batched pass of the model over ``probe`` (a ``ProbeSet``), then its evaluation; no index needed.

    In a distributed run each rank passes over its part and all get the whole set's evaluation.
    """
    import torch

    from cnnexplorer.core import distributed
    from cnnexplorer.core.checks import check_number
    from cnnexplorer.core.model_handle import eval_mode

    check_number("--batch-size", batch_size, 1, 1 << 16, whole=True)
    match_labels(probe.label_names, handle.class_names)  # refuse unmatched labels before any work
    total = len(probe)
    part = distributed.shard_range(total)
    labels, tops, probs = [], [], []
    outputs = handle.num_classes
    model = handle.pixel_model()
    finite = True
    yield Progress(0, len(part), "evaluating")
    with torch.no_grad(), eval_mode(handle.module):
        for first, pixels, batch_labels in probe.batches(handle.preprocessing, batch_size, part.start, part.stop):
            logits = model(pixels.to(handle.device)).float()
            finite = bool(torch.isfinite(logits).all())
            if not finite:
                break
            outputs = logits.shape[1]
            values, indices = torch.softmax(logits, dim=1).topk(min(TOP, outputs), dim=1)
            labels.append(batch_labels.cpu().numpy())
            tops.append(indices.cpu().numpy())
            probs.append(values.cpu().numpy())
            yield Progress(first + len(pixels) - part.start, len(part), "evaluating")
    if distributed.any_rank(not finite):
        raise UserError(f"{handle.spec} gives non-finite scores (NaN or infinity): its weights hold NaN or "
                        "infinite values (a diverged training run?); load other weights")
    kept = min(TOP, outputs)
    labels = distributed.gather_in_order(_joined(labels, (0,), np.int64))
    tops = distributed.gather_in_order(_joined(tops, (0, kept), np.int64))
    probs = distributed.gather_in_order(_joined(probs, (0, kept), np.float32))
    skipped = {k: v for part_skipped in distributed.gather_objects(dict(probe.skipped)) for k, v in part_skipped.items()}
    classes = [handle.label(c) for c in range(outputs)]
    return evaluation_of(labels, probe.label_names, classes, tops, probs, data_spec=probe.spec,
                         sources=[probe.source(i) for i in range(total)], skipped=skipped)


def _joined(parts: list[np.ndarray], empty: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty, dtype=dtype)
