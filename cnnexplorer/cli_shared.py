"""What every ``cnnexplorer`` command shares: the model options, ``--seed``/``--json``, loading the
model with a progress bar, printing the result (one JSON object last with ``--json``), and stopping a job
cleanly on Ctrl-C or SIGTERM (``stop_on_signals``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading

from cnnexplorer.core.errors import UserError
from cnnexplorer.pictures.flags import bounded_int, numbers


def add_model_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, metavar="SPEC",
                       help="builtin:NAME | torchvision:ARCH[:WEIGHTS] | timm:NAME[:pretrained|none|FILE] | "
                            "FILE.py:CLASS[:KWARGS-JSON] (with --trust) | a model file")
    group.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps (default: auto)")
    group.add_argument("--arch", metavar="SPEC", help="the architecture of a bare state_dict file; for train without --model, a new model of it "
                            "(builtin:NAME, torchvision:ARCH, timm:NAME, FILE.py:CLASS[:KWARGS-JSON] with --trust)")
    group.add_argument("--labels", metavar="FILE", help="class names, one per line")
    group.add_argument("--input-size", type=numbers(int, 3), metavar="C,H,W", help="model input size")
    group.add_argument("--mean", type=numbers(float), metavar="a,b,c", help="normalisation mean")
    group.add_argument("--std", type=numbers(float), metavar="a,b,c", help="normalisation std")
    group.add_argument("--trust", action="store_true",
                       help="allow a fully pickled model or an architecture's Python file (runs code from the file)")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="random seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def file_options(args):
    from cnnexplorer.core.models import FileOptions

    return FileOptions(arch=args.arch, labels=args.labels, input_size=args.input_size,
                       mean=args.mean, std=args.std, trust=args.trust)


def load_model(args):
    """Load ``--model`` with a progress bar on stderr (weights may be downloaded)."""
    import torch

    from cnnexplorer.core.jobs import TextProgressBar, drive
    from cnnexplorer.core.models import open_model

    _check_named_model_options(args)
    torch.manual_seed(args.seed)
    bar = TextProgressBar()
    try:
        return drive(open_model(args.model, args.device, file_options(args)), bar)
    finally:
        bar.close()


def _check_named_model_options(args) -> None:
    """A named model (builtin:, torchvision:, timm:) brings its own class names and normalisation: ``--labels``
    would be ignored, and so would ``--mean``/``--std`` except by ``train``, which applies them."""
    if str(args.model or "").partition(":")[0] not in ("builtin", "torchvision", "timm"):
        return
    flags = [("--labels", args.labels)]
    if args.command != "train":
        flags += [("--mean", args.mean), ("--std", args.std)]
    given = [flag for flag, value in flags if value is not None]
    if given:
        raise UserError(f"{', '.join(given)} only {'applies' if len(given) == 1 else 'apply'} to a model file; "
                        f"{args.model} brings its own class names and normalisation, so leave "
                        f"{'it' if len(given) == 1 else 'them'} out")


def emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload) if args.json else text)


def add_ablate(parser: argparse.ArgumentParser) -> None:
    """``--ablate LAYER:SPEC`` (repeatable) and ``--ablate-data`` for the ``=mean`` edits."""
    from cnnexplorer.core.interventions import SPEC_HELP

    group = parser.add_argument_group("interventions (the model itself is not changed)")
    group.add_argument("--ablate", action="append", default=[], type=_edit, metavar="LAYER:SPEC",
                       help=f"edit a layer's channels, repeatable: {SPEC_HELP}; channels count from 0, ranges like "
                            "9-12 include both ends")
    group.add_argument("--ablate-data", metavar="DATASPEC", help="the data whose per-channel means =mean edits use "
                       "(its first 512 images), e.g. builtin:shapes or a folder")


def _edit(text: str):
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.interventions import parse_edit

    try:
        return parse_edit(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def interventions(args, handle) -> tuple:
    """The ``--ablate`` edits, ``=mean`` ones filled from ``--ablate-data``'s means."""
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.interventions import channel_means_job, with_means

    edits = tuple(getattr(args, "ablate", None) or ())
    wanted = [e.layer for e in edits if e.mode == "mean" and e.values is None]
    if not wanted:
        return edits
    if not args.ablate_data:
        raise UserError(f"--ablate {wanted[0]}:…=mean needs the data whose means it uses: add --ablate-data DATASPEC")
    from cnnexplorer.core.dataset.probe import open_probe_job
    from cnnexplorer.core.jobs import TextProgressBar, drive

    bar = TextProgressBar()
    try:
        probe = drive(open_probe_job(args.ablate_data), bar)
        return with_means(edits, drive(channel_means_job(handle, probe, wanted), bar))
    finally:
        bar.close()


@contextlib.contextmanager
def stop_on_signals(say: bool = True):
    """For the block: an event that the first Ctrl-C or SIGTERM sets, for ``drive(job, stop=event)`` to stop the
    job at its next step as the GUI's Cancel does (an index saves its progress, to be resumed); a second signal
    stops at once. Only in the main thread, where Python delivers signals; ``say``: print what happens."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def at_once(signum, frame):
        raise KeyboardInterrupt

    def first(signum, frame):
        stop.set()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, at_once)
        again = "Ctrl-C again" if signum == signal.SIGINT else "the signal again"
        if say:  # os.write: a print here could land inside the progress bar's own write to stderr
            os.write(2, f"\ncnnexplorer: stopping after the current step ({again} to stop at once)\n".encode())

    before = {number: signal.signal(number, first) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
