"""The ``cnnexplorer`` command: headless subcommands, and the GUI launcher.

argparse runs before anything heavy is imported; Qt is imported only to launch the GUI. User
errors print one line on stderr and exit with code 2; ``--json`` prints one JSON object as the
last line of stdout.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from cnnexplorer.cli_shared import add_ablate, add_common, add_model_options, emit, interventions, load_model
from cnnexplorer.pictures.flags import bounded_int

import cnnexplorer


def _command_modules() -> dict[str, str]:
    """Each subcommand that has its own module: ``cli_NAME.py`` defines ``add_parser(sub)`` and ``run(args)``
    for the command NAME (``cli_shared.py`` holds what they share)."""
    names = sorted(info.name for info in pkgutil.iter_modules(cnnexplorer.__path__))
    return {name[len("cli_"):]: f"cnnexplorer.{name}" for name in names if name.startswith("cli_") and name != "cli_shared"}


COMMAND_MODULES = _command_modules()
COMMANDS = ("gui", "models", "summary", "predict", "export", *COMMAND_MODULES)


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors: ``cnnexplorer: error: ...`` and exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"cnnexplorer: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from cnnexplorer import __version__
    from cnnexplorer.pictures.registry import RECIPES
    from cnnexplorer.pictures.flags import add_shared_flags

    parser = _Parser(prog="cnnexplorer", description="See what a CNN has learned.")
    parser.add_argument("--version", action="version", version=f"cnnexplorer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", help="launch the desktop app (the default)")
    gui.add_argument("--model", metavar="SPEC", help="model to open (default: the last one, else builtin:shapes)")
    gui.add_argument("--device", help="auto|cpu|cuda|cuda:N|mps (default: the last one, else auto)")
    gui.add_argument("--fresh", action="store_true", help="forget remembered settings")
    gui.add_argument("images", nargs="*", metavar="IMAGE")

    models = sub.add_parser("models", help="list built-in and torchvision models")
    models.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    summary = sub.add_parser("summary", help="print the layer table: shapes, params, MACs, receptive fields")
    add_model_options(summary)
    add_common(summary)

    predict = sub.add_parser("predict", help="top-k predictions for images")
    add_model_options(predict)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--top", type=bounded_int(1), default=5, help="number of classes (default: 5)")
    add_ablate(predict)
    add_common(predict)

    export = sub.add_parser("export", help="write a view's picture as PNG with a sidecar JSON")
    add_model_options(export, required=False)
    export.add_argument("view", nargs="?", choices=sorted(RECIPES), metavar="VIEW",
                        help="one of: " + ", ".join(sorted(RECIPES)))
    export.add_argument("--from-sidecar", metavar="FILE.png.json",
                        help="make the picture a sidecar describes again (its view, model, image, layer, settings, seed)")
    export.add_argument("--image", metavar="IMG",
                        help="input image: a file, sample:NAME, or SPEC#N (image N of a data set, e.g. builtin:shapes#12)")
    export.add_argument("--layer", metavar="NAME", help="layer (dotted module name)")
    export.add_argument("--data", metavar="DATASPEC", help="a probe set for the dataset pictures (atlas, neighbours, confusion, map): "
                        "a folder of images, folder:PATH, builtin:shapes, builtin:digits, mnist:ROOT …")
    export.add_argument("--out", required=True, metavar="OUT.png")
    add_shared_flags(export)
    for recipe in RECIPES.values():
        recipe.add_flags(export)
    add_ablate(export)
    add_common(export)
    for module in COMMAND_MODULES.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def _files(args) -> tuple[dict, dict]:
    """The files ``args`` names to write and to read, by the names the user knows them by."""
    from cnnexplorer.core.images import image_path
    from cnnexplorer.core.render import png_paths
    from cnnexplorer.core.training.state import best_path

    inputs = {"--model": getattr(args, "model", None), "--labels": getattr(args, "labels", None)}
    inputs.update({f"the image {p}": image_path(p) for p in getattr(args, "images", None) or ()})
    if args.command == "export":
        png, sidecar = png_paths(args.out)
        outputs = {"--out": png, "its sidecar": sidecar, "--save-map": args.save_map,
                   "--save-adversarial": args.save_adversarial}
        return outputs, {**inputs, "--image": args.image and image_path(args.image), "--from-sidecar": args.from_sidecar}
    if args.command == "train":
        out = Path(args.out)
        outputs = {"--out": out, "the best checkpoint": best_path(out), "--plot": args.plot, "--csv": args.csv,
                   "--gradient-csv": args.gradient_csv}
        return outputs, {**inputs, "--resume": args.resume}
    return {}, inputs


def _check_files(args) -> None:
    """Every output is writable and collides with no input and no other output, before any work.

    A run resumed into its own checkpoint (``--resume c.pt --out c.pt``) continues that file.
    """
    from cnnexplorer.core.outputs import check_output, check_outputs, same_file

    if getattr(args, "out", None) is not None:
        check_output("--out", args.out)  # as typed: an empty name or a folder, before a suffix is added
    outputs, inputs = _files(args)
    if inputs.get("--resume") and same_file(inputs["--resume"], outputs["--out"]):
        check_outputs({"--out": outputs.pop("--out")})
    check_outputs(outputs, {k: v for k, v in inputs.items() if _is_file_spec(v)})


def _is_file_spec(value) -> bool:
    return value is not None and not str(value).startswith(("builtin:", "torchvision:", "timm:", "python:", "pickle:"))


def cmd_models(args) -> int:
    from cnnexplorer.core.builtin import BUILTIN_MODELS
    from cnnexplorer.core.zoo import zoo_entries

    entries = zoo_entries()
    builtin = [
        {"spec": f"builtin:{m.name}", "description": m.description, "trained": m.weights is not None}
        for m in BUILTIN_MODELS.values()
    ]
    listed = {
        library: [{"spec": e.spec, "weights": e.weights, "params": e.params, "gmacs": e.gmacs, "acc1": e.acc1,
                   "acc5": e.acc5, "file_size_mb": e.file_size_mb, "cached": e.cached}
                  for e in entries if e.library == library]
        for library in ("torchvision", "timm")
    }
    lines = ["Built-in:"] + [f"  {b['spec']:<28} {b['description']}" for b in builtin]
    for library, title in (("torchvision", "torchvision (* = weights cached):"),
                           ("timm", "timm (* = weights in timm's cache; it records no cost or accuracy):")):
        lines += ["", title]
        for e in (e for e in entries if e.library == library):
            gmacs = f"{e.gmacs:7.2f} GMACs" if e.gmacs is not None else "      — GMACs"
            acc = f"{e.acc1:5.1f} %" if e.acc1 is not None else "    —"
            lines.append(f"  {'*' if e.cached else ' '} {e.spec:<40} {e.params / 1e6:8.1f} M  {gmacs}  acc@1 {acc}")
    emit(args, {"builtin": builtin, **listed}, "\n".join(lines))
    return 0


def cmd_summary(args) -> int:
    from cnnexplorer.core.architecture import summarize

    handle = load_model(args)
    summary = summarize(handle.module, args.input_size or handle.input_size, handle.device, model_name=handle.spec)
    emit(args, summary.to_json(), summary_text(summary))
    return 0


def summary_text(summary) -> str:
    """The layer table as plain text, one row per module, indented by depth."""
    from cnnexplorer.core.layer_text import layer_text, summary_totals

    rows = [("Layer", "Type", "Output", "Params", "MACs", "RF")]
    for layer in summary.layers[1:]:
        text = layer_text(layer)
        rows.append(("  " * (layer.depth - 1) + text.name, text.type, text.shape or "—", text.params,
                     text.macs or "0", text.rf))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.append(f"Total params: {summary_totals(summary)}")
    return "\n".join(lines)


def cmd_predict(args) -> int:
    from cnnexplorer.core.images import load_image
    from cnnexplorer.core.interventions import applied
    from cnnexplorer.core.predict import predict_images

    images = [load_image(p) for p in args.images]
    handle = load_model(args)
    edits = interventions(args, handle)
    with applied(handle.module, edits):
        results = predict_images(handle, [im.image for im in images], top=args.top)
    payload = {
        "model": handle.spec,
        "interventions": [e.to_json() for e in edits],
        "results": [{"image": im.reference or str(im.path), "top": [s.to_json() for s in top]} for im, top in zip(images, results)],
    }
    lines = [f"edited: {'; '.join(e.words() for e in edits)}"] if edits else []
    for im, top in zip(images, results):
        lines.append(im.reference or str(im.path))
        lines += [f"  {s.prob * 100:6.2f} %  {s.label} ({s.index})" for s in top]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_export(args) -> int:
    from cnnexplorer.core.dataset.index import IndexNote
    from cnnexplorer.core.interventions import applied
    from cnnexplorer.core.jobs import TextProgressBar, drive
    from cnnexplorer.core.outputs import atomic_write_bytes
    from cnnexplorer.pictures.base import save_picture

    recipe, inputs, options, edits = _from_sidecar(args) if args.from_sidecar else _export_inputs(args)
    bar = TextProgressBar()

    def on_item(item) -> None:  # a dataset picture's notes: files skipped, layers left out, a pass resumed
        if isinstance(item, IndexNote):
            bar.close()
            print(f"cnnexplorer: {item.text}", file=sys.stderr)
        else:
            bar(item)

    try:
        with applied(inputs.handle.module, edits):
            picture = drive(recipe.make(inputs, options), on_item)
    finally:
        bar.close()
    png, side = save_picture(args.out, recipe.name, picture, inputs.handle, inputs.image, inputs.seed, edits)
    report = dict(picture.report)
    for key, dest in recipe.side_flags.items():
        path = getattr(args, dest, None)
        if path:
            atomic_write_bytes(path, picture.side[key])
        report[key] = str(path) if path else None
    payload = {"out": str(png), "sidecar": str(side), **report, "interventions": [e.to_json() for e in edits]}
    emit(args, payload, f"wrote {png} ({picture.pixels.shape[1]}×{picture.pixels.shape[0]}) and {side.name}")
    return 0


def _export_inputs(args):
    """The recipe, inputs, options and edits ``export VIEW`` flags ask for."""
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.images import load_image
    from cnnexplorer.pictures.base import Inputs
    from cnnexplorer.pictures.registry import RECIPES

    if not args.view:
        raise UserError(f"export needs a VIEW ({', '.join(sorted(RECIPES))}) or --from-sidecar FILE.png.json")
    if not args.model:
        raise UserError("export needs --model SPEC (builtin:NAME, torchvision:ARCH[:WEIGHTS] or a model file)")
    recipe = RECIPES[args.view]
    options = recipe.options_from_flags(args)
    image = load_image(args.image) if args.image else None
    handle = load_model(args)
    return recipe, Inputs(handle, image, args.layer, args.seed), options, interventions(args, handle)


_REPLAY_FLAGS = {"command", "view", "from_sidecar", "ablate", "out", "json", "device", "trust", "arch", "labels",
                 "save_map", "save_adversarial"}  # what a replay may be given: where to write, and how to load the model


def _from_sidecar(args):
    """The recipe, inputs, options and edits a sidecar written by the GUI or the CLI records."""
    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.images import load_image
    from cnnexplorer.pictures.base import Inputs
    from cnnexplorer.pictures.registry import RECIPES
    from cnnexplorer.pictures.sidecars import read_sidecar

    if args.view:
        raise UserError("give either a VIEW or --from-sidecar, not both: the sidecar names its view")
    if args.ablate:
        raise UserError("--ablate does not go with --from-sidecar: the sidecar records the edits its picture was made with")
    defaults = build_parser().parse_args(["export", f"--out={args.out}"])  # (an --out may start with "-")
    recorded_flags = [f"--{dest.replace('_', '-')}" for dest, value in vars(args).items()
                      if dest not in _REPLAY_FLAGS and value != getattr(defaults, dest, value)]
    if recorded_flags:
        raise UserError(f"{', '.join(recorded_flags)} {'does' if len(recorded_flags) == 1 else 'do'} not go with "
                        "--from-sidecar: the sidecar records its model, image, layer, data and settings; leave "
                        f"{'it' if len(recorded_flags) == 1 else 'them'} out, or export the view with flags of your own")
    recorded = read_sidecar(args.from_sidecar, RECIPES)
    args.model, args.seed = recorded.model_spec, recorded.seed
    if recorded.file_options is not None:
        args.input_size, args.mean, args.std = recorded.file_options
    image = load_image(recorded.image_path) if recorded.image_path else None
    if image is not None and image.sha256 != recorded.image_sha256:
        raise UserError(f"{recorded.image_path} has changed since the picture was made (its SHA-256 differs); "
                        "restore the original image to reproduce it")
    recipe = RECIPES[recorded.view]
    return (recipe, Inputs(load_model(args), image, recorded.layer, recorded.seed),
            recipe.options_from_settings(recorded.settings), recorded.interventions)


def cmd_gui(args) -> int:
    from cnnexplorer.gui.app import run_gui

    return run_gui(args.model, args.device, list(args.images), args.fresh)


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # also while the command's modules are still loading
        print("cnnexplorer: interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str]) -> int:
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "gui")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed
        return int(exit_.code or 0)
    from cnnexplorer.core.errors import OUT_OF_MEMORY_HINT, UserError, is_out_of_memory

    handlers = {"gui": cmd_gui, "models": cmd_models, "summary": cmd_summary, "predict": cmd_predict,
                "export": cmd_export}
    handler = handlers.get(args.command) or importlib.import_module(COMMAND_MODULES[args.command]).run
    try:
        _check_files(args)
        return handler(args)
    except UserError as exc:
        return _say_error(f"cnnexplorer: error: {exc}")
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is turned into a message here
        if not is_out_of_memory(exc):
            raise
        return _say_error(f"cnnexplorer: error: {OUT_OF_MEMORY_HINT}")


def _say_error(line: str) -> int:
    """A user error: one line on stderr and status 2. A rank of ``--nproc-per-node`` hands the line to the launcher,
    which says it once; under a bare torchrun only rank 0 says it."""
    import os

    from cnnexplorer.core.distributed import hand_over_user_error, launched

    if hand_over_user_error(line):
        return 0
    if not launched() or os.environ.get("RANK") == "0":
        print(line, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
