"""An adversarial example: original | perturbation | adversarial, with the predictions before and after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnexplorer.core.jobs import Job
from cnnexplorer.pictures.base import Inputs, Picture, Recipe

if TYPE_CHECKING:
    from cnnexplorer.core.adversarial import AttackResult


@dataclass(frozen=True)
class AdversarialOptions:
    """The attack and its options (None: the attack's defaults), and the target class (an index or
    typed text; None: away from the model's prediction)."""

    attack: str = "pgd"
    eps: float | None = None
    alpha: float | None = None
    steps: int | None = None
    target: int | str | None = None


@dataclass(frozen=True)
class Attacked:
    """A finished attack as the GUI keeps it: the core result (to explain and save) and the picture."""

    result: AttackResult
    picture: Picture


def run_attack(inputs: Inputs, options: AdversarialOptions) -> Job[Attacked]:
    """The attack (its ``AttackStep``s pass through, for a live curve) and its panel picture."""
    from cnnexplorer.core.adversarial import adversarial_pixels, attack_image, make_attack, render_adversarial_panel
    from cnnexplorer.core.classes import find_class
    from cnnexplorer.core.render import png_bytes

    handle, image = inputs.handle, inputs.need_image("adversarial")
    attack = make_attack(options.attack, eps=options.eps, alpha=options.alpha, steps=options.steps)
    target = find_class(handle.class_names, options.target) if options.target is not None else None
    pixels = handle.pixels(image)
    result = yield from attack_image(handle, pixels, attack, target, seed=inputs.seed)
    before = result.top(0, 1, after=False, class_names=handle.class_names)[0]
    after = result.top(0, 1, class_names=handle.class_names)[0]
    psnr = float(result.psnr[0])
    return Attacked(result, Picture(
        render_adversarial_panel(result, handle.class_names),
        settings={**attack.settings(), "target": target, "resolution": list(pixels.shape[1:])},
        report={"attack": attack.name, "eps": result.eps, "norm": result.budget.norm,
                "target": None if target is None else {"index": target, "label": handle.label(target)},
                "before": before.to_json(), "after": after.to_json(),
                "linf": float(result.linf[0]), "l2": float(result.l2[0]),
                "psnr": psnr if psnr != float("inf") else None, "ssim": float(result.ssim[0]),
                "iterations": int(result.iterations[0]), "success": bool(result.success[0])},
        side={"adversarial": png_bytes(adversarial_pixels(result))},
    ))


def make_adversarial(inputs: Inputs, options: AdversarialOptions) -> Job[Picture]:
    return (yield from run_attack(inputs, options)).picture


def _add_flags(parser) -> None:
    from cnnexplorer.core.adversarial import ATTACKS
    from cnnexplorer.pictures.flags import budget, suffix

    parser.add_argument("--attack", choices=list(ATTACKS), default="pgd", help="adversarial: the attack (default: pgd)")
    parser.add_argument("--eps", type=budget, metavar="E",
                        help="adversarial: budget in pixel units, 8/255 or 0.03 (default: 8/255; pgd-l2: 1.0)")
    parser.add_argument("--step-size", type=budget, metavar="A",
                        help="adversarial: step size (default: 2/255; pgd-l2: 0.2; ascent: 1/255 RMS per pixel)")
    parser.add_argument("--save-adversarial", metavar="ADV.png",
                        type=suffix(".png", "save the adversarial image as a .png file (a lossy format would "
                                            "change the pixels that fool the model)"),
                        help="adversarial: also write the adversarial image (model input size, lossless PNG)")


def _from_flags(args) -> AdversarialOptions:
    return AdversarialOptions(args.attack, args.eps, args.step_size, args.steps, args.target)


RECIPE = Recipe("adversarial", AdversarialOptions, make_adversarial, _add_flags, _from_flags,
                side_flags={"adversarial": "save_adversarial"})
