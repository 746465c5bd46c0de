"""Export view ``featurevis``: images that maximise channels, neurons or class logits of a layer
(or a DeepDream / inversion of the image), tiled in a grid; the report compares each objective
with its value on random noise and on the image."""

from __future__ import annotations

import argparse

from cnnexplorer.exports.base import ExportView, Picture, class_index, need_layer

DEFAULT_UNITS = 16


def _featurevis(handle, image, args) -> Picture:
    from cnnexplorer.core.featurevis import default_units, preset, render_featurevis_picture, visualize
    from cnnexplorer.core.jobs import drive

    kind = args.objective
    layer = (args.layer or "") if kind == "logit" else need_layer(args, "featurevis")
    units = args.channels
    if kind == "logit" and units is None and args.target is not None:
        units = [class_index(handle, args.target)]
    if units is None:
        units = default_units(handle, kind, layer, DEFAULT_UNITS)
    settings = preset(args.preset, steps=args.steps, size=args.size, param=args.param,
                      diversity=args.diversity if kind == "diversity" else None)
    pixels = handle.preprocessing.to_tensor(image.image) if image is not None else None
    result = drive(visualize(handle, kind, layer, units, pixels, settings, args.seed))
    return Picture(
        render_featurevis_picture(result.images, result.units),
        settings={**result.settings, "objective": kind, "units": result.units, "preset": args.preset},
        report={"layer": layer, "objective": kind, "channels": result.channels_json()},
        layer=layer,
    )


MAX_UNITS = 4096


def parse_units(text: str) -> list[int]:
    """``0-15`` or ``3,5,8-10`` → the listed indices, in order (at most ``MAX_UNITS`` of them)."""
    units: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if last < first:
                raise argparse.ArgumentTypeError(f"the range {part.strip()} runs backwards; write it as {last}-{first}")
            if len(units) + last - first + 1 > MAX_UNITS:
                raise argparse.ArgumentTypeError(f"'{text}' names more than {MAX_UNITS} units; "
                                                 "visualise fewer at a time")
            units += range(first, last + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices such as 0-15 or 3,5,8-10, got '{text}'") from None
    return units


def _add_featurevis_options(parser: argparse.ArgumentParser) -> None:
    from cnnexplorer.core.featurevis import OBJECTIVES, PARAMETERISATIONS, PRESETS

    parser.add_argument("--channels", type=parse_units, metavar="0-15",
                        help="featurevis: channels (logit: classes) to visualise (default: the first 16)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="channel",
                        help="featurevis: what to maximise (default: channel)")
    parser.add_argument("--size", type=int, metavar="PX", help="featurevis: image size (default: 128)")
    parser.add_argument("--param", choices=list(PARAMETERISATIONS),
                        help="featurevis: parameterisation (default: fft; pixel for deepdream and inversion)")
    parser.add_argument("--preset", choices=list(PRESETS), default="default",
                        help="featurevis: quick (64 steps), default (256) or quality (512)")
    parser.add_argument("--diversity", type=float, metavar="W",
                        help="featurevis --objective diversity: weight of the diversity term (default: 3; larger values buy variety by switching the channel off in some images)")


VIEWS = (ExportView("featurevis", _featurevis, _add_featurevis_options),)
