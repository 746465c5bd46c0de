"""The ``cnnexplorer evaluate`` command: accuracy, per-class accuracy and the confusion matrix on a labelled set.

``--nproc-per-node N`` shares the pass among N processes under torchrun; the figures are a single process's.
"""

from __future__ import annotations

from cnnexplorer.cli_shared import add_common, add_model_options, emit, load_model
from cnnexplorer.cli_train import add_launcher_flags, run_sharded
from cnnexplorer.pictures.flags import bounded_int

TABLE_CLASSES = 12  # a confusion matrix with more classes is left to --json
MISTAKES_SHOWN = 5


def add_parser(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="top-1/top-5 accuracy and the confusion matrix on a labelled set")
    add_model_options(evaluate)
    evaluate.add_argument("--data", required=True, metavar="DATASPEC",
                          help="a labelled folder of images (one sub-folder per class, named as the model's classes) "
                               "or a data spec: builtin:shapes, builtin:digits, mnist:ROOT, cifar10:ROOT …")
    evaluate.add_argument("--batch-size", type=bounded_int(1, 65536), default=64, metavar="N",
                          help="images per forward pass (default: 64)")
    add_launcher_flags(evaluate)
    add_common(evaluate)


def run(args) -> int:
    """Evaluate here, or with ``--nproc-per-node N`` under torchrun (each rank its part; rank 0 reports)."""
    return run_sharded(args, "evaluate", add_parser, _evaluate)


def _evaluate(args, main: bool = True) -> int:
    from cnnexplorer.core.dataset.evaluate import evaluate_job
    from cnnexplorer.core.dataset.probe import open_probe_job
    from cnnexplorer.core.jobs import TextProgressBar, drive

    bar = TextProgressBar()
    try:
        probe = drive(open_probe_job(args.data), bar)
        handle = load_model(args)
        evaluation = drive(evaluate_job(handle, probe, args.batch_size), bar)
    finally:
        bar.close()
    if main:
        emit(args, evaluation.to_json(), evaluation_text(evaluation, probe.spec))
    return 0


def evaluation_text(evaluation, spec: str) -> str:
    """The figures as a short table: totals, per-class accuracy, the confusion matrix of a few classes,
    what was left out, the most confident mistakes."""
    names = evaluation.class_names
    lines = [f"{evaluation.count} images of {spec}: top-1 {evaluation.top1:.1%}, top-5 {evaluation.top5_accuracy:.1%}",
             ""]
    width = max(len("class"), *(len(names[c]) for c in evaluation.per_class()))
    lines.append(f"{'class':<{width}}  images   top-1")
    lines += [f"{names[c]:<{width}}  {n:>6}  {acc:6.1%}" for c, (n, acc) in evaluation.per_class().items()]
    shown = evaluation.shown_classes()
    if len(shown) <= TABLE_CLASSES:
        lines += ["", "confusion (rows: true class, columns: predicted class)"]
        cell = max(5, *(len(names[c]) for c in shown))
        lines.append(" " * width + "".join(f"  {names[c]:>{cell}}" for c in shown))
        lines += [f"{names[t]:<{width}}" + "".join(f"  {evaluation.confusion[t, p]:>{cell}}" for p in shown)
                  for t in shown]
    else:
        lines += ["", f"confusion: {len(shown)} classes, too many for a table; see --json"]
    if evaluation.unmatched:
        lines += ["", f"left out: {_images(evaluation.left_out - evaluation.unlabelled)} with a label that names no "
                      f"class of the model ({', '.join(evaluation.unmatched)})"]
    if evaluation.unlabelled:
        lines += ["", f"left out: {_images(evaluation.unlabelled, 'unlabelled ')} (directly in the folder, not in a "
                      "class folder)"]
    if evaluation.skipped:
        lines += ["", f"skipped: {len(evaluation.skipped)} unreadable files"]
        lines += [f"  {path}: {why}" for path, why in list(evaluation.skipped.items())[:MISTAKES_SHOWN]]
    mistakes = evaluation.mistakes(MISTAKES_SHOWN)
    if mistakes:
        lines += ["", "most confident mistakes"]
        lines += [f"  {m.prob:6.1%}  {names[m.predicted]} for {names[m.label]}: {evaluation.image(m.image)}"
                  for m in mistakes]
    return "\n".join(lines)


def _images(count: int, kind: str = "") -> str:
    return f"{count:,} {kind}image{'' if count == 1 else 's'}"
