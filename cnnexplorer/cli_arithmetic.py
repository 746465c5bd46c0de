"""The ``cnnexplorer arithmetic`` command: the course's convolution arithmetic and design trade-offs.

``conv``, ``pool`` and ``transposed`` size one layer by the course's formula beside what PyTorch
does; ``tradeoffs`` counts the course's design trade-offs (for its examples, or ``--channels C``).
"""

from __future__ import annotations

from cnnexplorer.cli_shared import emit
from cnnexplorer.pictures.flags import bounded_int

SIDE = bounded_int(1, 1_000_000)


def _padding(text: str) -> int | str:
    return "same" if text == "same" else bounded_int(0, 1_000_000)(text)


def _layer_options(parser, padding_help: str) -> None:
    parser.add_argument("--size", type=SIDE, required=True, metavar="W", help="input width (= height)")
    parser.add_argument("--kernel", type=SIDE, required=True, metavar="F", help="kernel width (= height)")
    parser.add_argument("--stride", type=SIDE, metavar="S", help="stride (default: 1; pooling: the kernel)")
    parser.add_argument("--padding", type=_padding, default=0, metavar="P", help=padding_help)
    parser.add_argument("--dilation", type=SIDE, default=1, metavar="D", help="dilation (default: 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(sub) -> None:
    arithmetic = sub.add_parser("arithmetic", help="convolution arithmetic and design trade-offs as the course counts "
                                                   "them, beside what PyTorch does")
    kinds = arithmetic.add_subparsers(dest="arithmetic", required=True, metavar="KIND")
    conv = kinds.add_parser("conv", help="a convolution's output size (W − F + 2P)/S + 1, parameters and MACs")
    _layer_options(conv, "zero padding, or 'same' for (F − 1)/2 (default: 0)")
    conv.add_argument("--filters", type=SIDE, metavar="N", help="number of filters C, for parameters and MACs")
    conv.add_argument("--depth", type=SIDE, metavar="D", help="input depth (channels), for parameters and MACs")
    conv.add_argument("--no-bias", action="store_true", help="count no bias per filter")
    pool = kinds.add_parser("pool", help="a pooling layer's output size, floored and with ceil_mode")
    _layer_options(pool, "zero padding (default: 0)")
    transposed = kinds.add_parser("transposed", help="a transposed convolution as the course draws it and as "
                                                     "ConvTranspose2d computes it")
    _layer_options(transposed, "padding (default: 0): the course's zeros around the input, and ConvTranspose2d's")
    transposed.add_argument("--output-padding", type=bounded_int(0, 1_000_000), default=0, metavar="N",
                            help="ConvTranspose2d's output_padding (default: 0)")
    tradeoffs = kinds.add_parser("tradeoffs", help="the course's design trade-offs: 7×7 vs three 3×3, bottleneck, "
                                                   "1×3 + 3×1, depthwise-separable, inception's 1×1 reductions")
    tradeoffs.add_argument("--channels", type=bounded_int(2, 1_000_000), metavar="C",
                           help="count for C maps (default: 64) instead of in C²")
    tradeoffs.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.lab import arithmetic as lab

    if args.arithmetic == "tradeoffs":
        return _tradeoffs(args)
    padding = args.padding
    if padding == "same":
        if args.arithmetic != "conv":
            raise UserError("--padding same is for convolutions; give a number of pixels")
        padding = lab.same_padding(args.kernel, args.dilation)
        if padding is None:
            raise UserError(f"a {args.kernel}×{args.kernel} kernel has no 'same' padding: (F − 1)/2 is not whole; "
                            "use an odd kernel or give --padding")
    if args.arithmetic == "conv":
        if (args.filters is None) != (args.depth is None):
            raise UserError("give both --filters and --depth to count parameters and MACs")
        result = lab.conv_arithmetic(args.size, args.kernel, args.stride or 1, padding, args.dilation, args.filters,
                                     args.depth, bias=not args.no_bias)
    elif args.arithmetic == "pool":
        result = lab.pool_arithmetic(args.size, args.kernel, args.stride, padding, args.dilation)
    else:
        result = lab.transposed_arithmetic(args.size, args.kernel, args.stride or 1, padding, args.dilation,
                                           args.output_padding)
    emit(args, {**result.to_json(), "message": result.message()}, result.message())
    return 0


def _tradeoffs(args) -> int:
    from cnnexplorer.core.lab.tradeoffs import TRADEOFFS

    made = [make(args.channels) if args.channels and name in ("seven_vs_three", "bottleneck", "factorised")
            else make() for name, make in TRADEOFFS.items()]
    lines = []
    for t in made:
        lines.append(f"{t.title} ({t.unit}; the course: {t.course})")
        for label, terms, total in ((t.before_label, t.before, t.before_total), (t.after_label, t.after, t.after_total)):
            lines.append(f"  {label}: {total:,}")
            lines += [f"    {term.label}: {term.formula} = {term.count:,}" for term in terms]
        lines.append(f"  saving: {t.saving:.1%}" + (f"; note: {t.note}" if t.note else ""))
    emit(args, {"tradeoffs": [t.to_json() for t in made]}, "\n".join(lines))
    return 0
