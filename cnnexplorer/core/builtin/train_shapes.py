"""Train the shipped ``builtin:shapes`` weights and write the sample images.

``python -m cnnexplorer.core.builtin.train_shapes --out resources/weights/shapes.pt``
reproduces the shipped file (seeded; about 4½ minutes on 2 idle CPU threads): fresh generated
batches every step, AdamW with a one-cycle schedule, then the accuracy on ``validation_set()``
and the sample images, each checked through the app's own preprocessing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch import nn

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.builtin.nets import ShapesNet
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, ShapesBatch, generate_shapes, training_batches, validation_set
from cnnexplorer.core.model_handle import ModelHandle, eval_mode
from cnnexplorer.core.predict import predict_images
from cnnexplorer.resource_files import resource_path

DEFAULT_STEPS = 1200
SAMPLE_SEED = 7
SAMPLE_SIZE = 256


def train(
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 64,
    lr: float = 4e-3,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> ShapesNet:
    """A ShapesNet trained on ``steps`` fresh batches of ``training_batches(batch_size, seed)``, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ShapesNet(len(SHAPE_CLASSES))
    pixels = shapes_handle(model).pixel_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    model.train()
    start, loss_avg, acc_avg = time.monotonic(), 0.0, 0.0
    for step, batch in zip(range(1, steps + 1), training_batches(batch_size, seed)):
        logits = pixels(batch.images)
        loss = nn.functional.cross_entropy(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_avg = 0.95 * loss_avg + 0.05 * loss.item()
        acc_avg = 0.95 * acc_avg + 0.05 * (logits.argmax(1) == batch.labels).float().mean().item()
        if step % 100 == 0 or step == steps:
            debias = 1 - 0.95**step
            elapsed = time.monotonic() - start
            log(
                f"step {step}/{steps}  loss {loss_avg / debias:.4f}  train acc {acc_avg / debias:.4f}  "
                f"lr {schedule.get_last_lr()[0]:.2e}  {elapsed:.0f} s ({step * batch_size / elapsed:.0f} img/s)"
            )
    return model.eval()


def accuracy(pixel_model: nn.Module, data: ShapesBatch, batch_size: int = 250) -> float:
    """Fraction of ``data`` that ``pixel_model`` (taking [0,1] pixels) classifies correctly."""
    correct = 0
    with torch.no_grad(), eval_mode(pixel_model):
        for start in range(0, len(data.labels), batch_size):
            logits = pixel_model(data.images[start : start + batch_size])
            correct += int((logits.argmax(1) == data.labels[start : start + batch_size]).sum())
    return correct / len(data.labels)


def write_samples(folder: Path) -> list[Path]:
    """One ``SAMPLE_SIZE`` PNG per class (``circle.png`` …): the first image of each class from ``SAMPLE_SEED``."""
    folder.mkdir(parents=True, exist_ok=True)
    batch = generate_shapes(4 * len(SHAPE_CLASSES), SAMPLE_SEED, SAMPLE_SIZE)
    paths = []
    for k, name in enumerate(SHAPE_CLASSES):
        index = int((batch.labels == k).nonzero()[0])
        array = (batch.images[index] * 255).round().byte().permute(1, 2, 0).numpy()
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def shapes_handle(model: ShapesNet) -> ModelHandle:
    """``model`` wrapped like ``builtin:shapes`` (same preprocessing and labels), on the CPU."""
    entry = BUILTIN_MODELS["shapes"]
    return ModelHandle("builtin:shapes", model, torch.device("cpu"), entry.preprocessing, list(entry.class_names), "builtin", True)


def sample_predictions(model: ShapesNet, paths: list[Path]) -> list[str]:
    """The label ``model`` predicts for each sample file, through the app's own preprocessing."""
    images = [Image.open(p).convert("RGB") for p in paths]
    return [top[0].label for top in predict_images(shapes_handle(model), images, top=1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to save the state_dict (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--samples", type=Path, default=resource_path("samples"), help="folder for the sample PNGs")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.monotonic()
    model = train(seed=args.seed, steps=args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) after {time.monotonic() - start:.0f} s")
    acc = accuracy(shapes_handle(model).pixel_model(), validation_set())
    print(f"validation accuracy {acc:.4f} on validation_set()")
    paths = write_samples(args.samples)
    predicted = sample_predictions(model, paths)
    for path, label in zip(paths, predicted):
        print(f"{path}: predicted {label}")
    return 0 if all(p.stem == label for p, label in zip(paths, predicted)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
