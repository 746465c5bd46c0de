"""Images that maximise channels, neurons or class logits of a layer (or a DeepDream or inversion
of the image), tiled in a grid; the report compares each objective with its value on random noise
and on the image."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from cnnexplorer.core.featurevis import Settings
from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs, Picture, Recipe, settings_of

if TYPE_CHECKING:
    from cnnexplorer.core.featurevis import Visualisation
    from cnnexplorer.core.grids import GridLayout

DEFAULT_UNITS = 16


@dataclass(frozen=True)
class FeatureVisOptions:
    """The objective, the units (None: the first 16 channels or classes; the target class for a
    logit), a preset, and the optimisation's settings (None: the preset's)."""

    objective: str = "channel"
    units: tuple[int, ...] | None = None
    preset: str = "default"
    size: int | None = None
    steps: int | None = None
    lr: float | None = None
    param: str | None = None
    transforms: bool | None = None
    l2: float | None = None
    tv: float | None = None
    blur_every: int | None = None
    blur_sigma: float | None = None
    diversity: float | None = None
    preview_every: int | None = None
    target: int | str | None = None
    step: str | None = None
    logit_l2: float | None = None
    alpha: float | None = None
    alpha_weight: float | None = None
    inversion_tv: float | None = None

    def settings(self) -> Settings:
        from cnnexplorer.core.featurevis import preset

        return preset(self.preset, **{f.name: getattr(self, f.name) for f in fields(Settings)})


@dataclass(frozen=True)
class FeatureVis:
    """A finished visualisation as the GUI keeps it: the core result (images, values, curves), the
    grid's layout (to find the tile clicked) and the picture."""

    result: Visualisation
    layout: GridLayout
    picture: Picture

    def tile(self, index: int) -> Picture:
        """Image ``index`` (in grid order) alone, as the picture of its one unit."""
        from cnnexplorer.core.featurevis import render_featurevis_picture

        unit = self.result.units[index]
        return Picture(render_featurevis_picture(self.result.images[index: index + 1], [unit]),
                       settings={**self.picture.settings, "units": [unit]}, layer=self.picture.layer)


def run_featurevis(inputs: Inputs, options: FeatureVisOptions) -> Job[FeatureVis]:
    """The visualisation (its ``Step``s pass through, for a live grid) and its grid picture."""
    from cnnexplorer.core.classes import find_class
    from cnnexplorer.core.featurevis import IMAGE_KINDS, default_units, featurevis_grid, visualise

    handle, kind = inputs.handle, options.objective
    layer = (inputs.layer or "") if kind == "logit" else inputs.need_layer("featurevis")
    units = list(options.units) if options.units is not None and kind not in IMAGE_KINDS else None
    if kind == "logit" and units is None and options.target is not None:
        units = [find_class(handle.class_names, options.target)]
    if units is None:
        units = default_units(handle, kind, layer, DEFAULT_UNITS)
    settings = _workable(handle, layer, options.settings())
    pixels = handle.pixels(inputs.image) if inputs.image is not None else None
    result = yield from visualise(handle, kind, layer, units, pixels, settings, inputs.seed)
    made = FeatureVisOptions(kind, None if units is None else tuple(units), options.preset, **settings.to_json())
    grid, layout = featurevis_grid(result.images, result.units)
    picture = Picture(grid, settings={**result.settings, **settings_of(made), "seed": inputs.seed},
                      report={"layer": layer, "objective": kind, "channels": result.channels_json()}, layer=layer)
    return FeatureVis(result, layout, picture)


def _workable(handle, layer: str, settings):
    """``settings`` at a size ``layer`` runs at: a layer a Flatten feeds into a Linear takes the model's own
    input size only, and then no random transforms (they change the size)."""
    from dataclasses import replace

    from cnnexplorer.core.errors import UserError
    from cnnexplorer.core.featurevis.units import workable_size

    if not layer:
        return settings
    side = workable_size(handle, layer, settings.size)
    if side is None:
        size = "×".join(map(str, handle.input_size[1:]))
        raise UserError(f"{layer} runs only at the model's {size} input, which is not square, so it cannot be "
                        "visualised; pick a layer before the model flattens its maps")
    return settings if side == settings.size else replace(settings, size=side, transforms=False)


def make_featurevis(inputs: Inputs, options: FeatureVisOptions) -> Job[Picture]:
    return (yield from run_featurevis(inputs, options)).picture


def _add_flags(parser) -> None:
    from cnnexplorer.core.featurevis import OBJECTIVES, PARAMETERISATIONS, PRESETS
    from cnnexplorer.core.featurevis.optimize import STEP_RULES
    from cnnexplorer.pictures.flags import units

    parser.add_argument("--channels", type=units, metavar="0-15",
                        help="featurevis, atlas: channels (logit: classes) to show (default: featurevis the first 16, "
                             "atlas the first 9)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="channel",
                        help="featurevis: what to maximise (default: channel)")
    parser.add_argument("--size", type=int, metavar="PX", help="featurevis: image size (default: 128)")
    parser.add_argument("--param", choices=list(PARAMETERISATIONS),
                        help="featurevis: parameterisation (default: fft; pixel for deepdream and inversion)")
    parser.add_argument("--preset", choices=list(PRESETS), default="default",
                        help="featurevis: quick (64 steps), default (256), quality (512), or course: the course's plain "
                             "recipe, normalised gradient steps from grey without transforms (128)")
    parser.add_argument("--step", choices=STEP_RULES,
                        help="featurevis: adam, or normalised (the course's fixed-length gradient steps); default: the preset's")
    parser.add_argument("--class-l2", type=float, metavar="W",
                        help="featurevis --objective logit: the class model's L2 weight λ in S_c(I) − λ‖I‖² (default 1; "
                             "0 shows the course's white-noise result)")
    parser.add_argument("--inversion-alpha", type=float, metavar="A",
                        help="featurevis --objective inversion: the α-norm's exponent (default 6)")
    parser.add_argument("--inversion-alpha-weight", type=float, metavar="W",
                        help="featurevis --objective inversion: the α-norm's weight (default 1)")
    parser.add_argument("--inversion-tv", type=float, metavar="W",
                        help="featurevis --objective inversion: the total variation's weight (default 0.05)")
    parser.add_argument("--diversity", type=float, metavar="W",
                        help="featurevis --objective diversity: weight of the diversity term (default: 3; larger "
                             "values buy variety by switching the channel off in some images)")


def _from_flags(args) -> FeatureVisOptions:
    return FeatureVisOptions(objective=args.objective, units=None if args.channels is None else tuple(args.channels),
                             preset=args.preset, size=args.size, steps=args.steps, param=args.param,
                             diversity=args.diversity if args.objective == "diversity" else None, target=args.target,
                             step=args.step, logit_l2=args.class_l2, alpha=args.inversion_alpha,
                             alpha_weight=args.inversion_alpha_weight, inversion_tv=args.inversion_tv)


RECIPE = Recipe("featurevis", FeatureVisOptions, make_featurevis, _add_flags, _from_flags)
