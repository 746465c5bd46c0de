"""The *digits* dataset: real handwritten digits that ship with the app (``resources/data/digits.csv.gz``).

It is the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin and C. Kaynak, 1998;
CC BY 4.0, see ``resources/data/DIGITS-LICENSE.txt``), as scikit-learn bundles it: 1,797 digits
written by 13 people, each a 32×32 bitmap counted in 4×4 blocks into 8×8 cells of 0..16 ink pixels.

They are shown to the models as MNIST shows its digits, so a model trained on one meets the other
framed alike: white ink on black, the 8×8 grid upsampled (bilinear) to a 20×20 box centred in a
28×28 frame. A model of another input size sees that frame resized, as it sees MNIST's.
The validation part is fixed: the 5th, 10th, 15th … digit of each class in file order, 355 in all.
The file does not say who wrote which digit, so both parts hold digits by the same 13 people: the
held-out accuracy is that on new digits by known writers, which is kinder than on a stranger's.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from cnnexplorer.resource_files import resource_path

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FRAME = 28  # MNIST's image side
BOX = 20  # MNIST's digit box
GRID = 8  # the UCI cells per side
LEVELS = 16  # the most ink pixels a cell counts
VALIDATION_EVERY = 5


@dataclass(frozen=True)
class Digits:
    """``images`` [N,1,28,28] float in [0,1] (ink is 1); ``labels`` [N] long, the digit itself."""

    images: torch.Tensor
    labels: torch.Tensor


def read_grids() -> tuple[np.ndarray, np.ndarray]:
    """The shipped file's 8×8 ink counts [N,8,8] (0..16) and digits [N]."""
    with gzip.open(resource_path("data", "digits.csv.gz"), "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, GRID, GRID), table[:, -1]


def framed(grids: np.ndarray) -> torch.Tensor:
    """8×8 ink counts as MNIST-framed [N,1,28,28] pixels: upsampled into a 20×20 box in a black frame."""
    cells = torch.from_numpy(grids).float().unsqueeze(1) / LEVELS
    box = F.interpolate(cells, size=(BOX, BOX), mode="bilinear", align_corners=False).clamp(0, 1)
    margin = (FRAME - BOX) // 2
    return F.pad(box, (margin, margin, margin, margin))


@lru_cache(maxsize=1)
def all_digits() -> Digits:
    """Every digit of the shipped file, in the file's order."""
    grids, labels = read_grids()
    return Digits(framed(grids), torch.from_numpy(labels))


def is_validation(labels: torch.Tensor) -> torch.Tensor:
    """Which digits are held out: every fifth of each class, in file order, so both parts are balanced."""
    rank = torch.empty_like(labels)
    for digit in labels.unique():
        where = (labels == digit).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    return rank % VALIDATION_EVERY == VALIDATION_EVERY - 1


def split() -> tuple[Digits, Digits]:
    """The fixed (training, validation) parts."""
    digits = all_digits()
    held = is_validation(digits.labels)
    return (Digits(digits.images[~held], digits.labels[~held]), Digits(digits.images[held], digits.labels[held]))
