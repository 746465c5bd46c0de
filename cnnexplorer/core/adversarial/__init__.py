"""Adversarial examples: attacks in [0,1] pixel space, judged on 8-bit images.

One attack per module over the shared loop in ``base``; ``make_attack`` builds one by name with
the options a user gave (CLI ``--eps/--step-size/--steps``), refusing options it does not take.
Adversarial images are made at the model's input resolution (after the model's resize and
crop), so a saved PNG fed back through the same preprocessing is unchanged.
"""

from __future__ import annotations

import inspect

from cnnexplorer.core.adversarial.ascent import Ascent
from cnnexplorer.core.adversarial.base import Attack, AttackResult, AttackStep, clean_probabilities
from cnnexplorer.core.adversarial.bim import BIM
from cnnexplorer.core.adversarial.budget import Budget, as_uint8, parse_eps, to_8bit
from cnnexplorer.core.adversarial.cw import CW
from cnnexplorer.core.adversarial.dataset import LabelledImages, curve_images
from cnnexplorer.core.adversarial.deepfool import DeepFool
from cnnexplorer.core.adversarial.explain import Explanation, explain_job
from cnnexplorer.core.adversarial.fgsm import FGSM
from cnnexplorer.core.adversarial.panel import render_adversarial_panel
from cnnexplorer.core.adversarial.pgd import PGD, PGDL2
from cnnexplorer.core.adversarial.robustness import CurveOptions, RobustnessCurve, curve_job, robustness_curve
from cnnexplorer.core.adversarial.single import adversarial_pixels, attack_image, save_adversarial
from cnnexplorer.core.errors import UserError

OPTION_FLAGS = {"eps": "--eps", "alpha": "--step-size", "steps": "--steps"}
"""The CLI flag of each attack option, for messages."""

ATTACKS: dict[str, type[Attack]] = {a.name: a for a in (FGSM, BIM, PGD, PGDL2, DeepFool, CW, Ascent)}

__all__ = ["ATTACKS", "BIM", "CW", "FGSM", "PGD", "PGDL2", "Ascent", "Attack", "AttackResult", "AttackStep", "Budget",
           "CurveOptions", "DeepFool", "Explanation", "LabelledImages", "RobustnessCurve", "adversarial_pixels",
           "as_uint8", "attack_image", "clean_probabilities", "curve_images", "curve_job", "explain_job",
           "make_attack", "parse_eps",
           "render_adversarial_panel", "robustness_curve", "save_adversarial", "to_8bit"]


def make_attack(name: str, eps: float | None = None, alpha: float | None = None,
                steps: int | None = None) -> Attack:
    """The attack ``name`` with the given options; the others keep the attack's defaults."""
    if name not in ATTACKS:
        raise UserError(f"unknown attack '{name}': use one of {', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    given = {k: v for k, v in (("eps", eps), ("alpha", alpha), ("steps", steps)) if v is not None}
    accepted = inspect.signature(cls).parameters
    for option in given:
        if option not in accepted:
            raise UserError(f"{name} takes no {OPTION_FLAGS[option]}; leave it out (it takes: "
                            f"{', '.join(flag for p, flag in OPTION_FLAGS.items() if p in accepted)})")
    return cls(**given)
