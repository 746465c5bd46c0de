"""What every ``cnnexplorer`` command shares: the model options, ``--seed``/``--json``, loading the
model with a progress bar, and printing the result (one JSON object last with ``--json``)."""

from __future__ import annotations

import argparse
import json

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

    torch.manual_seed(args.seed)
    bar = TextProgressBar()
    try:
        return drive(open_model(args.model, args.device, file_options(args)), bar)
    finally:
        bar.close()


def emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload) if args.json else text)
