"""The gradient-ascent loop: a batch of images, each maximising its own objective value.

The forward pass stops at the deepest layer the objective reads: a forward hook raises a
private exception once every needed output is recorded, so no compute is spent on later layers.
Images live in [0,1]; the model's normalisation is inside ``handle.pixel_model()``. The model
runs in eval mode (flags restored after) and is otherwise untouched: gradients are taken with
``torch.autograd.grad`` for the image parameters only, so no weight gets a ``.grad`` and no
``requires_grad`` flag is switched (another view may use the same model meanwhile).
Layers are read as ``core.layouts`` lays them out (a channel of a ViT block is a hidden
dimension on the patch grid), and a model that runs at one input size only (ViT, MaxViT)
gets the images resized to it, so any image size and the size-changing transforms work.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnexplorer.core.checks import check_choice, check_number
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.featurevis.objectives import INPUT, Objective, l2, total_variation
from cnnexplorer.core.featurevis.param import PARAMETERISATIONS, gaussian_blur_, pixel_image
from cnnexplorer.core.featurevis.transforms import standard_transforms
from cnnexplorer.core.hooks import find_layers, forward_hooks, output_tensors
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.layouts import fixed_input_size, layout_of, require_gradients
from cnnexplorer.core.model_handle import ModelHandle, eval_mode


MAX_SIZE = 1024


@dataclass(frozen=True)
class Settings:
    """Lucid's defaults: 128 px, Adam lr 0.05, FFT + decorrelated colour, standard transforms.

    Regularisers: ``l2`` and ``tv`` weigh −‖I − ½‖² and −total variation (both per-pixel
    means) in the loss; ``blur_every`` > 0 blurs pixel-parameterised images every that many
    steps (``blur_sigma`` pixels). ``diversity`` weighs the diversity term of the "diversity"
    objective. ``preview_every`` is how often a ``Step`` with images is yielded.

    ``step``: ``adam``, or ``normalised``, the course's plain gradient ascent: each image moves by
    ``lr`` (root mean square over its values) along its gradient, whatever the gradient's size.
    ``logit_l2`` is the class model's λ in S_c(I) − λ‖I − ½‖² (the logit objective; 0 leaves the
    class score alone, and from grey the course's "white noise" result appears). Inversion's
    regularisers: −``alpha_weight``·mean|I − ½|^``alpha`` and −``inversion_tv``·total variation.
    """

    size: int = 128
    steps: int = 256
    lr: float = 0.05
    param: str = "fft"
    transforms: bool = True
    l2: float = 0.0
    tv: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.5
    diversity: float = 3.0
    preview_every: int = 16
    step: str = "adam"
    logit_l2: float = 1.0
    alpha: float = 6.0
    alpha_weight: float = 1.0
    inversion_tv: float = 0.05

    def __post_init__(self):
        if self.param not in PARAMETERISATIONS:
            raise UserError(f"unknown parameterisation '{self.param}': use one of {', '.join(PARAMETERISATIONS)}")
        check_choice("the step rule (--step)", self.step, STEP_RULES)
        for name, value in (("the class model's L2 weight (--class-l2)", self.logit_l2),
                            ("the inversion's α-norm weight (--inversion-alpha-weight)", self.alpha_weight),
                            ("the inversion's total-variation weight (--inversion-tv)", self.inversion_tv)):
            check_number(name, value, 0)
        check_number("the inversion's α-norm exponent (--inversion-alpha)", self.alpha, 1, 100,
                     why="α = 6 penalises only extreme pixels; α = 2 is the plain L2 norm")
        check_number("the number of steps (--steps)", self.steps, 1, whole=True)
        check_number("the image size (--size)", self.size, 8, MAX_SIZE, whole=True,
                     why=f"a batch of {MAX_SIZE} px images already takes gigabytes of activations")
        if self.blur_every and self.param != "pixel":
            raise UserError("blurring every k steps needs the pixel parameterisation: pass --param pixel")

    def to_json(self) -> dict:
        return asdict(self)


STEP_RULES = ("adam", "normalised")

PRESETS = {"quick": dict(steps=64, preview_every=8), "default": {}, "quality": dict(steps=512, preview_every=32),
           "course": dict(param="grey", transforms=False, step="normalised", lr=0.01, steps=128, preview_every=8)}
"""``course``: the course's plain recipe, normalised gradient steps from grey without transforms or
decorrelation (Simonyan et al. 2014), beside Lucid's (``default``)."""


def preset(name: str, **overrides) -> Settings:
    """``Settings`` of a named preset (quick, default, quality), with ``overrides`` not None."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
    return Settings(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class Step:
    """Progress of one batch: ``history[s, i]`` is element ``first + i``'s objective value at
    step ``s + 1`` (without regularisers, on the transformed image), ``images`` its current
    picture (``[n,H,W,C]`` uint8) for a live grid."""

    step: int
    total: int
    first: int
    history: np.ndarray
    images: np.ndarray

    @property
    def values(self) -> np.ndarray:
        return self.history[-1]


@dataclass(frozen=True)
class Result:
    """Optimised images ``[N,C,H,W]`` in [0,1] (CPU), their final objective values (on the
    untransformed images) and the value at every step (``history``, ``[steps, N]``)."""

    images: torch.Tensor
    values: np.ndarray
    settings: dict
    seed: int
    history: np.ndarray


class _Reached(Exception):
    """Raised by a forward hook once every needed layer has run (caught by ``run_to``)."""


def run_to(model: torch.nn.Module, root: torch.nn.Module, layers, images: torch.Tensor,
           source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Run ``model`` (a pixel model around ``root``) on ``images`` only as far as needed to
    record the outputs of ``layers`` (``INPUT``: ``source``, default ``images``), each laid
    out by ``core.layouts`` (``[N,C,H,W]`` for a map). A model with a fixed input size gets
    ``images`` resized to it.

    A module run several times in one pass is recorded at its first call. Only this thread's
    forward passes are seen: the GUI may run the same model in another worker meanwhile.
    """
    names = sorted(set(layers) - {INPUT})
    recorded = {INPUT: images if source is None else source}
    if not names:
        return recorded
    owner = threading.get_ident()
    modules = find_layers(root, names)
    layouts = {name: layout_of(root, name) for name in names}

    def recorder(name):
        def hook(module, args, output):
            if name in recorded or threading.get_ident() != owner:
                return
            tensor = output_tensors(output)[0]
            done = all(n in recorded for n in names if n != name)
            recorded[name] = layouts[name].maps(tensor if done else tensor.clone())
            if done:
                raise _Reached

        return hook

    size = fixed_input_size(root)
    if size is not None and tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    try:
        with forward_hooks([(m, recorder(n)) for n, m in zip(names, modules)]):
            model(images)
    except _Reached:
        return recorded
    missing = [n for n in names if n not in recorded]
    raise UserError(f"layer {', '.join(missing)} did not run in the forward pass; pick a layer the model uses")


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N,C,H,W]`` in [0,1] → ``[N,H,W,C]`` uint8."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class NormalisedAscent:
    """The course's step: ``p ← p − lr · g / rms(g)`` per image (``g`` the loss's gradient in
    ``p.grad``), so every step has the same length whatever the gradient's magnitude."""

    def __init__(self, params: list[torch.Tensor], lr: float):
        self.params, self.lr = params, lr

    def step(self) -> None:
        with torch.no_grad():
            for param in self.params:
                grad = param.grad
                rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
                param.sub_(self.lr * grad / rms.view(-1, *([1] * (grad.ndim - 1))))


def regularised(objective: Objective, settings: Settings, extra: Objective | None = None) -> Objective:
    """``objective`` plus ``extra``, minus the L2 and total-variation penalties ``settings`` asks for."""
    if extra is not None:
        objective = objective + extra
    if settings.l2:
        objective = objective - settings.l2 * l2()
    if settings.tv:
        objective = objective - settings.tv * total_variation()
    return objective


def evaluate(handle: ModelHandle, objective: Objective, images: torch.Tensor) -> np.ndarray:
    """``objective`` on ``images`` (``[N,C,H,W]`` in [0,1]), no gradients, stopping early."""
    with torch.no_grad(), eval_mode(handle.module):
        images = images.to(handle.device)
        values = objective(run_to(handle.pixel_model(), handle.module, objective.layers, images))
    return values.float().cpu().numpy()


def optimize(handle: ModelHandle, objective: Objective, count: int, settings: Settings = Settings(),
             generator: torch.Generator | None = None, init: torch.Tensor | None = None,
             first: int = 0, extra: Objective | None = None) -> Job[Result]:
    """Maximise ``objective`` (plus ``extra``, a term that is optimised but not reported) for a
    batch of ``count`` images (``init``: start from these ``[N,C,H,W]`` images,
    pixel-parameterised). Yields a ``Step`` every ``preview_every`` steps and at the end, and a
    ``Progress`` at every other step; returns the ``Result`` (values measured on the untransformed
    images)."""
    require_gradients(handle.module, "feature visualisation")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = generator.initial_seed()
    device = handle.device
    count = len(init) if init is not None else count
    if init is not None:
        params, image_fn = pixel_image(tuple(init.shape), generator, device, init=init)
    else:
        shape = (count, handle.input_size[0], settings.size, settings.size)
        params, image_fn = PARAMETERISATIONS[settings.param](shape, generator, device)
    size = init.shape[-1] if init is not None else settings.size
    transform = standard_transforms(size) if settings.transforms else (lambda image, gen: image)
    optimizer = torch.optim.Adam(params, lr=settings.lr) if settings.step == "adam" else NormalisedAscent(params, settings.lr)
    model = handle.pixel_model()
    loss = regularised(objective, settings, extra)
    history = torch.zeros((settings.steps, count), device=device)  # read at previews: a read every step would wait
    with eval_mode(handle.module):
        for step in range(1, settings.steps + 1):
            image = image_fn()
            activations = run_to(model, handle.module, loss.layers, transform(image, generator), image)
            values = objective(activations)
            total = values if loss is objective else loss(activations)
            for param, grad in zip(params, torch.autograd.grad(-total.sum(), params)):
                param.grad = grad
            optimizer.step()
            history[step - 1] = values.detach()
            if settings.blur_every and step % settings.blur_every == 0:
                gaussian_blur_(params[0], settings.blur_sigma)
            if step % settings.preview_every == 0 or step == settings.steps:
                yield Step(step, settings.steps, first, history[:step].cpu().numpy(), as_uint8(image))
            else:  # a yield every step: a cancel stops the run after this step, not after the next preview
                yield Progress(step, settings.steps, f"feature visualisation: step {step} of {settings.steps}")
        with torch.no_grad():
            images = image_fn().detach().cpu()
    return Result(images, evaluate(handle, objective, images), settings.to_json(), seed, history.cpu().numpy())


