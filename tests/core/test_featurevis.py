"""Feature visualisation mechanics: the objective algebra, each objective's ascent, seeds,
early exit, hooks and model state, batching (builtin:shapes, 32 px, a few steps)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from cnnexplorer.core.builtin.shapes_data import generate_shapes
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis import (Settings, Step, deepdream, default_units, evaluate, noise_values, optimize,
                                         preset, render_units, run_to, visualise)
from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.featurevis.param import fft_image, gaussian_blur_, pixel_image
from cnnexplorer.core.featurevis.transforms import random_rotate, random_scale, standard_transforms
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model

LAYER = "features.2"
FAST = Settings(size=32, steps=6, preview_every=2)


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", "cpu")


def hooks_left(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_objectives_compose_with_plus_minus_and_scalars():
    acts = {"a": torch.arange(24.0).view(2, 3, 2, 2), obj.INPUT: torch.full((2, 3, 4, 4), 0.75)}
    one, two = obj.channel("a", 1), obj.channel("a", [0, 2])
    assert one(acts).tolist() == [5.5, 17.5]
    assert two(acts).tolist() == [1.5, 21.5]
    combined = 2 * one - two + obj.l2() * 0.5
    assert torch.allclose(combined(acts), 2 * one(acts) - two(acts) + 0.5 * 0.0625)
    assert combined.layers == {"a", obj.INPUT}
    assert (-one)(acts).tolist() == [-5.5, -17.5]
    assert "channel('a', 1)" in combined.name
    assert obj.neuron("a", 0)(acts).tolist() == [3.0, 15.0]


def objective_cases(shapes):
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = run_to(shapes.pixel_model(), shapes.module, ["features.0"], image[None])["features.0"]
    return {
        "channel": obj.channel(LAYER, [0, 2]),
        "neuron": obj.neuron("features.2.1", [0, 2]),  # BN output: pre-ReLU, never flat
        "class_logit": obj.class_logit("", [1, 3]),
        "deepdream": obj.deepdream(LAYER),
        "inversion": obj.inversion("features.0", target),
        "diversity": obj.diversity(LAYER),
        "minus_l2": -obj.l2(),
        "minus_alpha_norm": -obj.alpha_norm(),
        "minus_total_variation": -obj.total_variation(),
    }


@pytest.mark.parametrize("name", ["channel", "neuron", "class_logit", "deepdream", "inversion", "diversity",
                                  "minus_l2", "minus_alpha_norm", "minus_total_variation"])
def test_each_objective_improves_under_ascent(shapes, name):
    objective = objective_cases(shapes)[name]
    start = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    before = evaluate(shapes, objective, start)
    result = drive(optimize(shapes, objective, 2, Settings(size=32, steps=8, param="pixel", transforms=False),
                            init=start))
    assert result.values.sum() > before.sum(), (before, result.values)


def test_deepdream_starts_from_the_image_and_raises_the_layer_energy(shapes):
    image = generate_shapes(1, seed=2, size=40).images[0]
    before = evaluate(shapes, obj.deepdream(LAYER), image[None])
    result = drive(deepdream(shapes, image, LAYER, Settings(steps=12, transforms=False), octaves=2))
    assert result.images.shape == (1, 3, 40, 40)
    assert result.values[0] > before[0]
    assert (result.images[0] - image).abs().mean() < 0.25


def test_same_seed_gives_bitwise_the_same_images_and_another_seed_does_not(shapes):
    runs = [drive(render_units(shapes, LAYER, [0, 1], settings=FAST, seed=s)) for s in (7, 7, 8)]
    assert torch.equal(runs[0].images, runs[1].images)
    assert not torch.equal(runs[0].images, runs[2].images)
    assert runs[0].seed == 7


def test_steps_are_yielded_with_values_and_uint8_previews(shapes):
    items = []
    result = drive(render_units(shapes, LAYER, [3, 4, 5], settings=FAST, batch_size=2), items.append)
    steps = [i for i in items if isinstance(i, Step)]
    assert [(s.first, s.step) for s in steps] == [(0, 2), (0, 4), (0, 6), (2, 2), (2, 4), (2, 6)]
    assert steps[0].images.dtype.name == "uint8"
    assert steps[0].images.shape == (2, 32, 32, 3) and steps[-1].values.shape == (1,)
    assert result.images.shape == (3, 3, 32, 32) and result.values.shape == (3,)
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    assert result.settings["batch_size"] == 2 and result.settings["steps"] == 6


def test_batched_units_match_their_own_objective(shapes):
    result = drive(render_units(shapes, LAYER, [2, 0], settings=FAST, seed=1))
    direct = [evaluate(shapes, obj.channel(LAYER, k), result.images[i: i + 1])[0] for i, k in enumerate([2, 0])]
    assert result.values.tolist() == pytest.approx(direct, rel=1e-5)


def test_forward_pass_stops_at_the_target_layer(shapes):
    calls = []
    later = [shapes.module.features[3], shapes.module.classifier]
    handles = [m.register_forward_hook(lambda *a: calls.append(1)) for m in later]
    try:
        drive(render_units(shapes, LAYER, [0, 1], settings=FAST))
    finally:
        for h in handles:
            h.remove()
    assert calls == []


def test_model_state_and_hooks_are_restored_also_when_cancelled(shapes):
    module = shapes.module
    module.train()
    module.classifier.weight.requires_grad_(False)
    flags = [p.requires_grad for p in module.parameters()]
    weights = [p.detach().clone() for p in module.state_dict().values()]
    job = render_units(shapes, LAYER, [0, 1], settings=Settings(size=32, steps=50, preview_every=1))
    next(job)
    assert all(p.grad is None for p in module.parameters()), "no weight gradient is computed"
    assert not any(m.training for m in module.modules()), "eval mode while it runs"
    assert hooks_left(module) == 0
    job.close()
    assert hooks_left(module) == 0
    assert all(m.training for m in module.modules())
    assert [p.requires_grad for p in module.parameters()] == flags
    assert all(torch.equal(a, b) for a, b in zip(weights, module.state_dict().values())), "batch-norm statistics too"
    drive(render_units(shapes, LAYER, [0], settings=FAST))
    assert hooks_left(module) == 0 and all(m.training for m in module.modules())
    module.eval()
    module.classifier.weight.requires_grad_(True)


def test_parameterisations_and_transforms_give_valid_images():
    gen = torch.Generator().manual_seed(0)
    for make in (pixel_image, fft_image):
        params, image_fn = make((2, 3, 33, 33), gen, torch.device("cpu"))
        image = image_fn()
        assert image.shape == (2, 3, 33, 33) and 0 < float(image.detach().min()) and float(image.detach().max()) < 1
        image.sum().backward()
        assert params[0].grad is not None and params[0].grad.abs().sum() > 0
    out = standard_transforms(64)(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    assert out.shape[:2] == (2, 3) and abs(out.shape[2] - 64) <= 12
    params, image_fn = pixel_image((1, 3, 16, 16), gen, torch.device("cpu"), init=torch.rand(1, 3, 16, 16))
    tv = obj.total_variation()
    before = float(tv({obj.INPUT: image_fn().detach()})[0])
    gaussian_blur_(params[0], 1.0)
    assert float(tv({obj.INPUT: image_fn().detach()})[0]) < before / 2


def test_user_errors(shapes):
    with pytest.raises(UserError, match="units 0 to 47"):
        drive(render_units(shapes, LAYER, [48], settings=FAST))
    with pytest.raises(UserError, match="unknown layer"):
        drive(render_units(shapes, "features.99", [0], settings=FAST))
    with pytest.raises(UserError, match="preset"):
        preset("best")
    with pytest.raises(UserError, match="--param pixel"):
        Settings(blur_every=4)
    assert preset("quick", steps=None, size=64) == Settings(steps=64, size=64, preview_every=8)


def test_regularisers_make_smoother_images_and_the_history_records_every_step(shapes):
    settings = Settings(size=32, steps=12, param="pixel", transforms=False, preview_every=4)
    plain, smooth = (drive(render_units(shapes, LAYER, [0, 2], settings=replace(settings, tv=tv), seed=1))
                     for tv in (0.0, 20.0))
    tv = obj.total_variation()
    assert float(tv({obj.INPUT: smooth.images}).mean()) < 0.5 * float(tv({obj.INPUT: plain.images}).mean())
    assert plain.history.shape == (12, 2) and plain.history[-1].mean() > plain.history[0].mean()
    blurred = drive(render_units(shapes, LAYER, [0, 2], settings=replace(settings, blur_every=3), seed=1))
    assert float(tv({obj.INPUT: blurred.images}).mean()) < float(tv({obj.INPUT: plain.images}).mean())


def test_diversity_gives_different_images_of_one_channel(shapes):
    settings = Settings(size=32, steps=24)
    alike, diverse = (drive(visualise(shapes, "diversity", LAYER, [2], settings=replace(settings, diversity=w)))
                      for w in (0.0, Settings().diversity))
    assert diverse.units == [2, 2, 2, 2] and diverse.images.shape == (4, 3, 32, 32)
    similarity = [float(evaluate(shapes, obj.diversity(LAYER), v.images).mean()) for v in (alike, diverse)]
    assert similarity[1] > similarity[0] + 0.2, similarity  # measured: -0.98 → -0.44
    # measured: 3× to 17× the channel's value on noise (a weight of 10 switches it off in some images)
    assert (diverse.values > 2 * diverse.noise_values).all(), (diverse.values, diverse.noise_values)
    with pytest.raises(UserError, match="ONE channel"):
        drive(visualise(shapes, "diversity", LAYER, [1, 2], settings=settings))


def test_default_units(shapes):
    assert default_units(shapes, "channel", LAYER) == list(range(16))
    assert default_units(shapes, "logit", "") == list(range(6))
    assert default_units(shapes, "diversity", LAYER) == [0]
    assert default_units(shapes, "inversion", LAYER) is None
    assert noise_values(shapes, obj.channel(LAYER, [0, 1]), 2, 32).shape == (2,)


def test_the_course_recipe_takes_fixed_length_steps_from_grey(shapes):
    """``course``: plain pixels from exactly grey, each step lr long (root mean square), whatever the gradient."""
    settings = preset("course", steps=1, size=32)
    assert (settings.param, settings.step, settings.transforms) == ("grey", "normalised", False)
    one = drive(optimize(shapes, obj.class_logit("", [2]), 1, settings))
    moved = one.images - 0.5
    assert float(moved.pow(2).mean().sqrt()) == pytest.approx(settings.lr, rel=1e-4)
    two = drive(optimize(shapes, obj.class_logit("", [2]), 1, replace(settings, steps=2)))
    assert float((two.images - one.images).pow(2).mean().sqrt()) == pytest.approx(settings.lr, rel=0.05)
    with pytest.raises(UserError, match="--step"):
        Settings(step="sgd")


def test_the_class_model_l2_weight_may_be_zero_and_the_inversion_weights_are_used(shapes):
    """λ = 0: the reported value is the bare class logit; the inversion reports the weights it was given."""
    bare = drive(visualise(shapes, "logit", "", [1], settings=preset("course", steps=3, size=32, logit_l2=0.0)))
    logits = evaluate(shapes, obj.class_logit("", [1]), bare.images)
    assert bare.values == pytest.approx(logits, rel=1e-5)
    penalised = evaluate(shapes, obj.class_logit("", [1]) - 2.0 * obj.l2(), bare.images)
    assert drive(visualise(shapes, "logit", "", [1], settings=preset("course", steps=3, size=32, logit_l2=2.0))
                 ).settings["logit_l2"] == 2.0 and penalised[0] < logits[0]
    image = generate_shapes(1, seed=5).images[0]
    weights = dict(alpha=2.0, alpha_weight=0.5, inversion_tv=0.2)
    inverted = drive(visualise(shapes, "inversion", "features.0", image=image, settings=Settings(steps=2, **weights)))
    assert (inverted.settings["alpha"], inverted.settings["alpha_weight"], inverted.settings["tv_weight"]) == (2.0, 0.5, 0.2)
    with pytest.raises(UserError, match="--class-l2"):
        Settings(logit_l2=-1.0)


@pytest.mark.parametrize("scale, degrees", [(1.0, 0.0), (0.9, 0.0), (1.1, 0.0), (1.0, -10.0), (1.0, 7.0)])
def test_scale_and_rotation_resample_as_affine_grid_does(scale, degrees):
    """The transforms' grid, made from the angle as plain numbers, is ``affine_grid``'s from the matrix, to float
    rounding; and each transform draws one of its choices."""
    images = torch.rand(3, 3, 40, 52, generator=torch.Generator().manual_seed(0))
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(3, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    expected = torch.nn.functional.grid_sample(images, grid, padding_mode="reflection", align_corners=False)
    transform = random_scale([scale]) if degrees == 0 else random_rotate([degrees])
    torch.testing.assert_close(transform(images, torch.Generator().manual_seed(0)), expected, atol=1e-5, rtol=0)
