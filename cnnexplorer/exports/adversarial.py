"""Export view ``adversarial``: attack the image, write the three-panel picture (and the image)."""

from __future__ import annotations

import argparse

from cnnexplorer.core.errors import UserError
from cnnexplorer.exports.base import ExportView, Picture, class_index, need_image


def _adversarial(handle, image, args) -> Picture:
    from cnnexplorer.core.adversarial import attack_image, make_attack, render_adversarial_panel, save_adversarial
    from cnnexplorer.core.adversarial.single import png_path
    from cnnexplorer.core.jobs import drive

    need_image(image, "adversarial")
    if args.save_adversarial:
        png_path(args.save_adversarial)  # refuse a lossy format before the attack runs
    attack = make_attack(args.attack, eps=args.eps, alpha=args.step_size, steps=args.steps)
    target = class_index(handle, args.target) if args.target is not None else None
    pixels = handle.preprocessing.to_tensor(image.image)
    result = drive(attack_image(handle, pixels, attack, target, seed=args.seed))
    if args.save_adversarial:
        save_adversarial(args.save_adversarial, result)
    before = result.top(0, 1, after=False, class_names=handle.class_names)[0]
    after = result.top(0, 1, class_names=handle.class_names)[0]
    psnr = float(result.psnr[0])
    return Picture(
        render_adversarial_panel(result, handle.class_names),
        settings={**attack.settings(), "target": target, "save_adversarial": args.save_adversarial,
                  "resolution": list(pixels.shape[1:])},
        report={"attack": attack.name, "eps": result.eps, "norm": result.budget.norm,
                "target": None if target is None else {"index": target, "label": handle.label(target)},
                "before": before.to_json(), "after": after.to_json(),
                "linf": float(result.linf[0]), "l2": float(result.l2[0]),
                "psnr": psnr if psnr != float("inf") else None, "ssim": float(result.ssim[0]),
                "iterations": int(result.iterations[0]), "success": bool(result.success[0]),
                "adversarial": args.save_adversarial},
    )


def _budget(text: str) -> float:
    from cnnexplorer.core.adversarial import parse_eps

    try:
        return parse_eps(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_adversarial_options(parser: argparse.ArgumentParser) -> None:
    from cnnexplorer.core.adversarial import ATTACKS

    parser.add_argument("--attack", choices=list(ATTACKS), default="pgd", help="adversarial: the attack (default: pgd)")
    parser.add_argument("--eps", type=_budget, metavar="E",
                        help="adversarial: budget in pixel units, 8/255 or 0.03 (default: 8/255; pgd-l2: 1.0)")
    parser.add_argument("--step-size", type=_budget, metavar="A",
                        help="adversarial: step size (default: 2/255; pgd-l2: 0.2; ascent: 1/255 RMS per pixel)")
    parser.add_argument("--save-adversarial", metavar="ADV.png",
                        help="adversarial: also write the adversarial image (model input size, lossless PNG)")


VIEWS = (ExportView("adversarial", _adversarial, _add_adversarial_options),)
