"""The loop every attack shares: 8-bit judging, per-sample early stop, best-iterate tracking.

An attack subclass says what it optimises (``objective``, minimised) and how it steps
(``descend``, or all of ``update``); ``Attack.run`` does the rest. Each iteration evaluates the
current iterate *after* projection and 8-bit quantisation (a straight-through estimator: the
forward sees the quantised image, the gradient passes to the continuous iterate), so success
is decided on exactly the image a PNG would hold, without an extra forward pass.

The model is any module taking [0,1] pixels (``ModelHandle.pixel_model()``). It runs in eval
mode (every module's flag restored in ``finally``); gradients are taken with ``autograd.grad``
with respect to the input only, so parameters keep their ``requires_grad`` flags and ``.grad``
and the weights are never written. (Switching those flags off would buy no speed, since
``autograd.grad`` already skips the weight gradients, and would race with other threads that
take gradients through the same model.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnexplorer.core.adversarial import metrics
from cnnexplorer.core.adversarial.budget import Box, Budget, to_8bit
from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.predict import ClassScore


@dataclass(frozen=True)
class AttackStep:
    """One iteration, averaged over the batch (the GUI's live curve).

    ``target_prob`` is the target class's probability for a targeted attack, else that of the
    most likely wrong class; ``loss`` is the attack's own objective (which it minimises);
    ``active`` counts the images still being attacked.
    """

    iteration: int
    true_prob: float
    target_prob: float
    loss: float
    active: int


@dataclass(frozen=True, eq=False)
class AttackResult:
    """What an attack did to each image of a batch (CPU tensors, first dimension N).

    ``adversarial`` is on the 8-bit grid and inside the budget; ``before`` and ``after`` are
    softmax probabilities ``[N,K]`` for the original and the adversarial image; ``iterations``
    counts the steps each image was attacked for.
    """

    attack: str
    budget: Budget
    original: Tensor
    adversarial: Tensor
    labels: Tensor
    targets: Tensor | None
    before: Tensor
    after: Tensor
    iterations: Tensor
    success: Tensor
    settings: dict = field(default_factory=dict)

    @property
    def delta(self) -> Tensor:
        return self.adversarial - self.original

    def _levels(self) -> tuple[Tensor, Tensor]:
        """Both images as float64 grey levels 0–255 (exact: they lie on the 8-bit grid)."""
        return tuple((t.double() * 255).round() for t in (self.adversarial, self.original))

    @property
    def linf(self) -> Tensor:
        """Largest pixel change, computed in grey levels so that 8 levels read exactly 8/255."""
        adversarial, original = self._levels()
        return metrics.linf(adversarial - original) / 255

    @property
    def l2(self) -> Tensor:
        adversarial, original = self._levels()
        return metrics.l2(adversarial - original) / 255

    @property
    def psnr(self) -> Tensor:
        return metrics.psnr(*(t / 255 for t in self._levels()))

    @property
    def ssim(self) -> Tensor:
        return metrics.ssim(*(t / 255 for t in self._levels()))

    @property
    def eps(self) -> float | None:
        return self.budget.eps

    def top(self, index: int, k: int = 5, after: bool = True, class_names=None) -> list[ClassScore]:
        """Top-``k`` classes of image ``index``, after the attack (or before it)."""
        probs = (self.after if after else self.before)[index]
        values, classes = probs.topk(min(k, probs.numel()))
        names = class_names or []
        return [ClassScore(int(c), names[int(c)] if int(c) < len(names) else f"class {int(c)}", float(p))
                for p, c in zip(values, classes)]


def model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def margin(logits: Tensor, classes: Tensor) -> Tensor:
    """``logit[class] − max other logit`` per sample: > 0 exactly when ``class`` is the top-1."""
    own = logits.gather(1, classes[:, None])[:, 0]
    other = logits.scatter(1, classes[:, None], float("-inf")).amax(dim=1)
    return own - other


@dataclass
class AttackState:
    """The tensors of one run: inputs, the iterate (``var``), and what has been found so far."""

    original: Tensor
    labels: Tensor
    targets: Tensor | None
    generator: torch.Generator
    var: Tensor = None
    memory: dict = field(default_factory=dict)
    probs: Tensor = None
    loss: Tensor = None
    best: Tensor = None
    best_probs: Tensor = None
    best_score: Tensor = None
    success: Tensor = None
    iterations: Tensor = None
    active: Tensor = None
    box: Box | None = None

    def rows(self, tensor: Tensor, idx: Tensor) -> Tensor:
        """``tensor[idx]``, without a copy while every image is still attacked."""
        return tensor if idx.numel() == tensor.shape[0] else tensor[idx]

    def set_var(self, idx: Tensor, value: Tensor) -> None:
        """``var[idx] = value``, without a copy while every image is still attacked."""
        if idx.numel() == self.var.shape[0]:
            self.var = value
        else:
            self.var[idx] = value

    def box_rows(self, idx: Tensor) -> Box | None:
        if self.box is None or idx.numel() == self.original.shape[0]:
            return self.box
        return self.box.rows(idx)

    @property
    def goal(self) -> Tensor:
        """The class each image is pushed towards (targeted) or away from (untargeted)."""
        return self.targets if self.targets is not None else self.labels


class Attack:
    """Template for iterative attacks on a batch ``[N,C,H,W]`` of [0,1] images."""

    name: ClassVar[str]
    needs_target: ClassVar[bool] = False
    minimise_distance: ClassVar[bool] = False  # among successful iterates keep the closest

    def __init__(self, budget: Budget, steps: int, early_stop: bool):
        if steps < 1:
            raise UserError(f"{self.name} needs at least one step; pass --steps 1 or more")
        self.budget = budget
        self.steps = steps
        self.early_stop = early_stop

    def settings(self) -> dict:
        """The parameters that reproduce the run (for sidecars)."""
        return {"attack": self.name, "norm": self.budget.norm, "eps": self.budget.eps,
                "steps": self.steps, "early_stop": self.early_stop}

    # --- hooks -------------------------------------------------------------------------
    def start(self, state: AttackState) -> None:
        """Set ``state.var``, the optimisation variable (default: the pixels themselves)."""
        state.var = state.original.clone()

    def pixels(self, state: AttackState, idx: Tensor, var: Tensor) -> Tensor:
        """Continuous pixels of the images ``idx`` from their variable."""
        return var

    def objective(self, state: AttackState, idx: Tensor, logits: Tensor, pixels: Tensor) -> Tensor:
        """Per-sample loss the attack minimises."""
        raise NotImplementedError

    def descend(self, state: AttackState, idx: Tensor, var: Tensor, grad: Tensor) -> Tensor:
        """The next variable of the images ``idx`` from the gradient of the objective."""
        raise NotImplementedError

    def update(self, state: AttackState, idx: Tensor, var: Tensor, loss: Tensor, logits: Tensor) -> None:
        (grad,) = torch.autograd.grad(loss.sum(), var)
        state.set_var(idx, self.descend(state, idx, var.detach(), grad))

    # --- the loop ----------------------------------------------------------------------
    def run(self, model: nn.Module, images: Tensor, labels: Tensor | None = None,
            targets: Tensor | int | None = None, seed: int = 0, before: Tensor | None = None) -> Job[AttackResult]:
        """Attack ``images``; yields an ``AttackStep`` per iteration, returns the ``AttackResult``.

        ``labels`` default to the model's own predictions; ``targets`` (a class per image, or
        one for all) make the attack targeted. ``seed`` drives any random start. ``before``:
        ``clean_probabilities(model, images)`` when the caller has them already (a robustness
        curve attacks the same images at every ε), which saves the attack its clean forward.
        """
        if self.needs_target and targets is None:
            raise UserError(f"{self.name} needs a target class: pass --target CLASS")
        with eval_mode(model):
            state = self._prepare(model, images, labels, targets, seed, before)
            self.start(state)
            for iteration in range(self.steps + 1):
                idx = state.active.nonzero()[:, 0]
                if idx.numel() == 0:
                    break
                last = iteration == self.steps
                with torch.set_grad_enabled(not last):
                    var = state.rows(state.var, idx).detach().requires_grad_(not last)
                    x = self.pixels(state, idx, var)
                    q = self.budget.quantise(x.detach(), state.rows(state.original, idx), state.box_rows(idx))
                    xq = x + (q - x).detach()
                    logits = model(xq)
                    loss = self.objective(state, idx, logits, xq)
                    self._record(state, iteration, idx, xq.detach(), logits.detach(), loss.detach())
                    if not last:
                        self.update(state, idx, var, loss, logits)
                yield self._step(state, iteration)
            return self._result(state)

    def _prepare(self, model, images, labels, targets, seed, before) -> AttackState:
        device = model_device(model)
        original = eight_bit_batch(images, device)
        if before is None:
            before = _softmax(model, original)
        elif before.shape[0] != original.shape[0]:
            raise ValueError(f"expected clean probabilities for {original.shape[0]} images, got {tuple(before.shape)}")
        before = before.to(device, torch.float32)
        n, classes = before.shape
        labels = before.argmax(dim=1) if labels is None else _per_sample(labels, n, device)
        if targets is not None:
            targets = _per_sample(targets, n, device)
            if int(targets.min()) < 0 or int(targets.max()) >= classes:
                raise UserError(f"target class out of range: the model has classes 0 to {classes - 1}")
        state = AttackState(original, labels, targets, torch.Generator(device).manual_seed(seed))
        state.box = self.budget.box(original)
        state.memory["before"] = before
        state.probs = before.clone()
        state.loss = torch.zeros(n, device=device)
        state.best = original.clone()
        state.best_probs = before.clone()
        state.best_score = torch.full((n,), float("inf"), device=device)
        state.success = torch.zeros(n, dtype=torch.bool, device=device)
        state.iterations = torch.zeros(n, dtype=torch.long, device=device)
        state.active = torch.ones(n, dtype=torch.bool, device=device)
        return state

    def _record(self, state: AttackState, iteration: int, idx: Tensor, xq: Tensor, logits: Tensor,
                loss: Tensor) -> None:
        """Judge the quantised iterate; keep it per image if it beats the best so far.

        Better means: successful before unsuccessful, then the lower objective (or, with
        ``minimise_distance``, the smaller L2 distance among successful ones). The starting
        point counts only if it already succeeds, so a result is always a step taken.
        """
        probs = F.softmax(logits.float(), dim=1)
        goal = state.goal[idx]
        top = probs.argmax(dim=1)
        success = top == goal if state.targets is not None else top != goal
        score = loss.float()
        if self.minimise_distance:
            score = torch.where(success, metrics.l2(xq - state.original[idx]), score)
        old_success = state.success[idx]
        better = (success & ~old_success) | ((success == old_success) & (score < state.best_score[idx]))
        if iteration == 0:
            better &= success
        keep = idx[better]
        state.best[keep] = xq[better]
        state.best_probs[keep] = probs[better]
        state.best_score[keep] = score[better]
        state.success[keep] = success[better]
        state.probs[idx] = probs
        state.loss[idx] = loss.float()
        state.iterations[idx] = iteration
        if self.early_stop:
            state.active[idx[success]] = False

    def _step(self, state: AttackState, iteration: int) -> AttackStep:
        probs = state.probs
        true_prob = probs.gather(1, state.labels[:, None])[:, 0]
        if state.targets is not None:
            other = probs.gather(1, state.targets[:, None])[:, 0]
        else:
            other = probs.scatter(1, state.labels[:, None], 0.0).amax(dim=1)
        return AttackStep(iteration, float(true_prob.mean()), float(other.mean()), float(state.loss.mean()),
                          int(state.active.sum()))

    def _result(self, state: AttackState) -> AttackResult:
        return AttackResult(
            attack=self.name, budget=self.budget, original=state.original.cpu(), adversarial=state.best.cpu(),
            labels=state.labels.cpu(), targets=None if state.targets is None else state.targets.cpu(),
            before=state.memory["before"].cpu(), after=state.best_probs.cpu(),
            iterations=state.iterations.cpu(), success=state.success.cpu(), settings=self.settings(),
        )


def eight_bit_batch(images: Tensor, device: torch.device) -> Tensor:
    """``images`` ``[N,C,H,W]`` on ``device`` and on the 8-bit grid: what an attack starts from."""
    if images.dim() != 4:
        raise ValueError(f"expected images [N,C,H,W], got shape {tuple(images.shape)}")
    return to_8bit(images.detach().to(device, torch.float32))


def _softmax(model: nn.Module, pixels: Tensor) -> Tensor:
    with torch.no_grad():
        return F.softmax(model(pixels).float(), dim=1)


def clean_probabilities(model: nn.Module, images: Tensor) -> Tensor:
    """Softmax probabilities ``[N,K]`` of the 8-bit ``images``: an attack's ``before``, to share between attacks."""
    with eval_mode(model):
        return _softmax(model, eight_bit_batch(images, model_device(model)))


def _per_sample(values: Tensor | int, n: int, device: torch.device) -> Tensor:
    if isinstance(values, int):
        return torch.full((n,), values, dtype=torch.long, device=device)
    values = torch.as_tensor(values, dtype=torch.long, device=device).reshape(-1)
    if values.numel() == 1:
        return values.expand(n).clone()
    if values.numel() != n:
        raise ValueError(f"expected {n} classes, one per image, got {values.numel()}")
    return values
