"""Per-attack properties (the loss moves the right way), the model left untouched, the budget
kept exactly through 8-bit rounding, the metrics against hand-computed values, the curve and
the panel picture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnexplorer.core.adversarial import (ATTACKS, BIM, CW, FGSM, PGD, PGDL2, Ascent, Budget, DeepFool, as_uint8,
                                          clean_probabilities, make_attack, parse_eps, render_adversarial_panel,
                                          robustness_curve)
from cnnexplorer.core.adversarial import metrics, panel
from cnnexplorer.core.adversarial.base import AttackStep
from cnnexplorer.core.builtin.nets import ShapesNet
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, generate_shapes
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Progress, drive
from cnnexplorer.core.model_handle import PixelModel
from cnnexplorer.core.models import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("builtin:shapes", "cpu").pixel_model()


@pytest.fixture(scope="module")
def batch():
    return generate_shapes(12, 99)


class Counting(torch.nn.Module):
    """The model, counting its forward passes."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def run(attack, model, batch, targets=None):
    steps: list[AttackStep] = []
    result = drive(attack.run(model, batch.images, batch.labels, targets), steps.append)
    assert [s.iteration for s in steps] == list(range(len(steps)))
    return steps, result


# --- the loss moves the right way -------------------------------------------------------

def test_given_clean_probabilities_save_the_clean_forward_and_change_nothing(model, batch):
    counting = Counting(model)
    alone = drive(PGD(steps=3).run(counting, batch.images, batch.labels))
    assert counting.calls == 1 + 3 + 1  # the clean image, 3 steps, the judged last iterate
    counting.calls = 0
    before = clean_probabilities(model, batch.images)
    given = drive(PGD(steps=3).run(counting, batch.images, batch.labels, before=before))
    assert counting.calls == 3 + 1
    for name in ("before", "adversarial", "after", "success", "iterations"):
        assert torch.equal(getattr(given, name), getattr(alone, name)), name
    with pytest.raises(ValueError, match="clean probabilities for 12 images"):
        drive(PGD(steps=1).run(model, batch.images, batch.labels, before=before[:3]))


def test_fgsm_step_lowers_the_true_class_probability(model, batch):
    steps, result = run(FGSM(4 / 255), model, batch)
    assert len(steps) == 2 and int(result.iterations.min()) == 1
    assert steps[1].true_prob < steps[0].true_prob - 0.2
    assert steps[1].loss < steps[0].loss  # the objective is -cross-entropy of the true class
    true_before = result.before.gather(1, batch.labels[:, None])
    true_after = result.after.gather(1, batch.labels[:, None])
    assert bool((true_after <= true_before + 1e-6).all())


@pytest.mark.parametrize("attack", [PGD(steps=6), PGDL2(eps=2.0, alpha=0.5, steps=6), BIM(steps=6)],
                         ids=["linf", "l2", "bim"])
def test_untargeted_pgd_raises_the_loss_of_the_true_class(model, batch, attack):
    steps, result = run(attack, model, batch)
    losses = [s.loss for s in steps]
    assert losses[-1] < losses[1] < losses[0]
    assert sum(b <= a + 1e-3 for a, b in zip(losses[1:], losses[2:])) >= len(losses) - 3
    assert steps[-1].true_prob < 0.2 < 0.9 < steps[0].true_prob


def test_targeted_pgd_raises_the_target_probability(model, batch):
    targets = (batch.labels + 2) % len(SHAPE_CLASSES)
    steps, result = run(PGD(steps=8), model, batch, targets)
    assert steps[-1].target_prob > steps[1].target_prob > steps[0].target_prob
    assert steps[-1].loss < steps[0].loss  # cross-entropy of the target
    assert torch.equal(result.success, result.after.argmax(1) == targets)


MARGIN_NOISE = 1e-5


def test_deepfool_shrinks_the_true_class_margin_until_it_flips(model, batch):
    steps, result = run(DeepFool(), model, batch)
    margins = [s.loss for s in steps]
    # never up; flat only while a sub-grey-level step leaves an 8-bit image unchanged. A flat step
    # may still move by float noise (-0.008067 -> -0.008066 on one CPU), so "up" means up by more
    # than MARGIN_NOISE, a thousandth of the smallest margin seen here.
    assert all(b <= a + MARGIN_NOISE for a, b in zip(margins, margins[1:])), margins
    assert margins[-1] < 0 < margins[0]
    assert bool(result.success.all())
    assert steps[-1].active == 0 and int(result.iterations.max()) == len(steps) - 1


def test_cw_lowers_its_objective_and_finds_close_examples(model, batch):
    steps, result = run(CW(), model, batch)  # c 1, kappa 0, 50 steps, lr 0.01
    assert steps[-1].loss < steps[10].loss < steps[0].loss
    assert result.success.float().mean() >= 0.75
    # its successes are much closer than PGD's
    _, pgd = run(PGD(), model, batch)
    assert result.l2[result.success].median() < 0.5 * pgd.l2[pgd.success].median()


def test_ascent_climbs_the_target_score_until_the_model_says_it(model, batch):
    targets = (batch.labels + 3) % len(SHAPE_CLASSES)
    steps, result = run(Ascent(), model, batch, targets)
    assert steps[-1].target_prob > steps[0].target_prob + 0.4
    assert steps[-1].loss < steps[0].loss  # -score + penalty
    assert bool(result.success.all())
    assert torch.equal(result.after.argmax(1), targets)
    stopped = result.iterations
    assert int(stopped.max()) < 100 and int(stopped.min()) >= 1  # each image stopped at its success


def test_the_l2_penalty_keeps_ascent_closer(model, batch):
    targets = (batch.labels + 3) % len(SHAPE_CLASSES)
    loose = drive(Ascent(l2_penalty=0.0).run(model, batch.images, batch.labels, targets))
    tight = drive(Ascent(l2_penalty=1.0).run(model, batch.images, batch.labels, targets))
    assert tight.l2.mean() < loose.l2.mean()


# --- the model is left exactly as it was ----------------------------------------------

def model_state(module):
    return ({k: v.clone() for k, v in module.state_dict().items()},
            [m.training for m in module.modules()], [p.requires_grad for p in module.parameters()])


def assert_same_state(module, state):
    weights, modes, flags = state
    now = module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in weights.items())
    assert [m.training for m in module.modules()] == modes
    assert [p.requires_grad for p in module.parameters()] == flags
    assert all(p.grad is None for p in module.parameters())


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_leave_weights_mode_and_flags_untouched(name):
    torch.manual_seed(0)
    net = ShapesNet(6)  # batch norm: a forward in train mode would move its running stats
    net.train()
    net.features[0].eval()
    net.classifier.weight.requires_grad_(False)
    state = model_state(net)
    images = torch.rand(2, 3, 64, 64)
    attack = make_attack(name, steps=2) if name != "fgsm" else make_attack(name)
    drive(attack.run(PixelModel(net, (0.5,) * 3, (0.25,) * 3), images, targets=torch.tensor([1, 2])
                     if name in ("ascent", "pgd", "cw") else None))
    assert_same_state(net, state)


def test_a_cancelled_attack_restores_the_model():
    torch.manual_seed(0)
    net = ShapesNet(6).train()
    state = model_state(net)
    job = PGD(steps=10).run(PixelModel(net, (0.5,) * 3, (0.25,) * 3), torch.rand(2, 3, 64, 64))
    next(job)
    next(job)
    assert not any(m.training for m in net.modules())  # eval mode while running
    assert all(p.requires_grad for p in net.parameters())  # gradients are taken w.r.t. the input only
    job.close()
    assert_same_state(net, state)


# --- budgets and quantisation --------------------------------------------------------

def test_linf_quantisation_keeps_the_budget_in_whole_grey_levels():
    gen = torch.Generator().manual_seed(0)
    original = torch.randint(0, 256, (4, 3, 16, 16), generator=gen) / 255
    budget = Budget("linf", 3 / 255)
    moved = budget.project(original + (torch.rand(original.shape, generator=gen) - 0.5) * 0.1, original)
    q = budget.quantise(moved, original)
    levels = q * 255
    assert torch.equal(levels, levels.round()) and float(levels.min()) >= 0 and float(levels.max()) <= 255
    assert int((as_uint8(q).int() - as_uint8(original).int()).abs().max()) == 3
    assert budget.levels == 3 and Budget("linf", 0.03).levels == 7  # 0.03 = 7.65 levels: 7 fit


def test_l2_quantisation_never_leaves_the_ball():
    gen = torch.Generator().manual_seed(1)
    original = torch.randint(0, 256, (8, 3, 16, 16), generator=gen) / 255
    budget = Budget("l2", 0.5)
    direction = torch.randn(original.shape, generator=gen)
    on_sphere = budget.project(original + direction * 10, original)  # pushed to the ball's surface
    q = budget.quantise(on_sphere, original)
    assert torch.equal(q * 255, (q * 255).round())
    assert float(metrics.l2(q.double() - original.double()).max()) <= 0.5 + 1e-9
    assert float(metrics.l2(q - original).min()) > 0.3  # rounding towards the original keeps most of it


def test_parse_eps():
    assert parse_eps("8/255") == 8 / 255
    assert parse_eps(" 0.03 ") == 0.03 and parse_eps("1e-2") == 0.01
    for bad in ("eight", "8/0", "-1", "nan"):
        with pytest.raises(UserError):
            parse_eps(bad)


def test_make_attack_takes_only_the_options_an_attack_has():
    assert isinstance(make_attack("pgd-l2"), PGDL2) and make_attack("pgd-l2").budget.eps == 1.0
    attack = make_attack("pgd", eps=4 / 255, alpha=1 / 255, steps=3)
    assert (attack.budget.eps, attack.alpha, attack.steps) == (4 / 255, 1 / 255, 3)
    with pytest.raises(UserError, match="fgsm takes no --steps"):
        make_attack("fgsm", steps=3)
    with pytest.raises(UserError, match="deepfool takes no --eps"):
        make_attack("deepfool", eps=0.1)
    with pytest.raises(UserError, match="unknown attack 'pgdd'"):
        make_attack("pgdd")
    with pytest.raises(UserError, match="at least one step"):
        make_attack("pgd", steps=0)


def test_targets_are_checked(model, batch):
    with pytest.raises(UserError, match="ascent needs a target"):
        drive(Ascent().run(model, batch.images))
    with pytest.raises(UserError, match="deepfool is untargeted"):
        drive(DeepFool().run(model, batch.images, targets=1))
    with pytest.raises(UserError, match="classes 0 to 5"):
        drive(PGD().run(model, batch.images, targets=6))


# --- metrics -----------------------------------------------------------------------

def test_metrics_match_hand_computed_values():
    a = torch.full((1, 3, 20, 20), 100 / 255)
    b = a + 1 / 255
    assert float(metrics.psnr(a, b)) == pytest.approx(20 * math.log10(255), abs=1e-4)  # 48.13 dB
    assert float(metrics.linf(b - a)) == pytest.approx(1 / 255)
    assert float(metrics.l2(b - a)) == pytest.approx(math.sqrt(1200) / 255, rel=1e-5)
    assert math.isinf(float(metrics.psnr(a, a)))
    # constant images: only the luminance term is left, (2xy + C1) / (x^2 + y^2 + C1)
    x, y, c1 = 0.2, 0.6, 0.01**2
    const = metrics.ssim(torch.full((1, 1, 16, 16), x, dtype=torch.float64),
                         torch.full((1, 1, 16, 16), y, dtype=torch.float64))
    assert float(const) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), rel=1e-9)
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(metrics.ssim(noise, noise), torch.ones(2, dtype=torch.float64))
    small, large = metrics.ssim(noise, noise + 0.02), metrics.ssim(noise, noise.flip(-1))
    assert bool((large < small).all()) and bool((small < 1).all())


# --- robustness curve --------------------------------------------------------------

def test_robustness_curve_falls_with_eps_and_pgd_below_fgsm(model):
    data = generate_shapes(32, 5)
    items = []
    counting = Counting(model)
    curve = drive(robustness_curve(counting, data.images, data.labels, eps=(0, 2 / 255, 8 / 255), steps=5,
                                   batch_size=16), items.append)
    # per chunk: one clean forward shared by all attacks, then per budget FGSM's 1 step and PGD's 5, each + the judging
    assert counting.calls == 2 * (1 + 2 * (1 + 1) + 2 * (5 + 1))
    assert curve.eps == (0.0, 2 / 255, 8 / 255)
    fgsm, pgd = curve.accuracy["fgsm"], curve.accuracy["pgd"]
    assert fgsm[0] == pgd[0] >= 0.9
    assert fgsm[0] >= fgsm[1] >= fgsm[2] and pgd[0] >= pgd[1] >= pgd[2]
    assert all(p <= f for p, f in zip(pgd, fgsm)) and pgd[2] <= 0.1
    assert all(0 < c <= 1 for c in curve.confidence["pgd"])
    true_class = curve.true_class["pgd"]  # falls as the attack pushes the true class down
    assert true_class[0] >= 0.9 and true_class[0] > true_class[1] > true_class[2] < 0.1
    assert curve.confidence["pgd"][2] > true_class[2]  # fooled, yet confident in the wrong class
    progress = [i for i in items if isinstance(i, Progress)]
    assert progress[-1].done == progress[-1].total == (2 * 2 + 1) * 2  # (attacks x budgets + clean) x chunks
    assert [p.done for p in progress] == sorted(p.done for p in progress)


# --- the picture ---------------------------------------------------------------------

def test_amplification_is_a_round_factor_that_fits():
    assert panel.amplification(np.array([8 / 255])) == 10  # 8/255 x 10 = 0.31; x 20 would clip
    assert panel.amplification(np.array([0.5])) == 1
    assert panel.amplification(np.array([1 / 255])) == 100
    assert panel.amplification(np.zeros(3)) == 1


def find(haystack: np.ndarray, needle: np.ndarray, top: int) -> int | None:
    h, w = needle.shape[:2]
    for x in range(haystack.shape[1] - w + 1):
        if np.array_equal(haystack[top : top + h, x : x + w], needle):
            return x
    return None


def test_panel_shows_the_original_and_the_adversarial_pixels(model, batch):
    result = drive(PGD(steps=3).run(model, batch.images[:2], batch.labels[:2]))
    picture = render_adversarial_panel(result, SHAPE_CLASSES, index=1)
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    top = panel.MARGIN + panel.TITLE_SIZE + 12
    zoom = 3  # 64 px tiles are enlarged to at least 160 px
    tiles = [np.kron(as_uint8(t[1]).permute(1, 2, 0).numpy(), np.ones((zoom, zoom, 1), np.uint8))
             for t in (result.original, result.adversarial)]
    x_original, x_adversarial = (find(picture, t, top) for t in tiles)
    assert x_original is not None and x_adversarial is not None and x_adversarial > x_original + 2 * 192
    assert not np.array_equal(render_adversarial_panel(result, SHAPE_CLASSES, index=0), picture)
