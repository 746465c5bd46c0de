"""Train the shipped ``builtin:lenet5`` weights on the shipped handwritten digits.

``python -m cnnexplorer.core.builtin.train_lenet5 --out resources/weights/lenet5.pt``
reproduces the shipped file (seeded; about ten seconds on 2 CPU threads). It is the app's own
training run, so the same weights come from ``cnnexplorer train --model builtin:lenet5 --data
builtin:digits --scratch --epochs 20 --batch-size 32 --lr 0.003 --augment
rotation=10,shift=0.1,zoom=0.1,fill=constant --out lenet5.pt``: AdamW with a cosine schedule,
each digit moved a little every time it is seen (rotated up to 10°, shifted and scaled by up to
10 %, on black) so that the net learns digits not all centred alike. It ends with the accuracy on
the fixed held-out part of ``builtin:digits``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from cnnexplorer.core.builtin import BUILTIN_MODELS
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.training.augment import Augmentation
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.loop import EpochMetrics, TrainResult
from cnnexplorer.core.training.run import TrainRequest, training_job

RECIPE = TrainConfig(
    epochs=20,
    batch_size=32,
    lr=3e-3,
    augment=Augmentation(rotation=10, width_shift=0.1, height_shift=0.1, zoom=0.1, fill="constant"),
    snapshots=False,
    precision="fp32",
)


def untrained_lenet5() -> ModelHandle:
    """LeNet-5 as ``builtin:lenet5`` wraps it (preprocessing, digit labels), without the shipped weights."""
    entry = BUILTIN_MODELS["lenet5"]
    return ModelHandle("builtin:lenet5", entry.build(), torch.device("cpu"), entry.preprocessing,
                       list(entry.class_names), "none", False)


def train(config: TrainConfig = RECIPE, log: Callable[[str], None] = lambda line: print(line, flush=True)
          ) -> TrainResult:
    """LeNet-5 trained from scratch (seeded by ``config.seed``) on ``builtin:digits``, on the CPU."""
    request = TrainRequest(model=untrained_lenet5(), data="builtin:digits", config=config, scratch=True,
                           arch="builtin:lenet5", device="cpu")

    def report(item) -> None:
        if isinstance(item, EpochMetrics):
            log(f"epoch {item.epoch}/{config.epochs}  loss {item.train_loss:.4f}  train acc {item.train_acc:.4f}  "
                f"val acc {item.val_acc:.4f}  {item.elapsed_s:.1f} s")

    return drive(training_job(request), report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to save the state_dict (.pt)")
    parser.add_argument("--seed", type=int, default=RECIPE.seed)
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.monotonic()
    result = train(replace(RECIPE, seed=args.seed, epochs=args.epochs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.handle.module.state_dict(), args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) after {time.monotonic() - start:.1f} s")
    print(f"validation accuracy {result.final_val_acc:.4f} on the held-out part of builtin:digits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
