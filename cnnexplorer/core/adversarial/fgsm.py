"""Fast gradient sign method (Goodfellow et al. 2015): one step of size ε along the gradient's sign."""

from __future__ import annotations

from cnnexplorer.core.adversarial.pgd import PGD
from cnnexplorer.core.checks import check_number


class FGSM(PGD):
    name = "fgsm"

    def __init__(self, eps: float = 8 / 255):
        check_number("the budget ε (--eps)", eps, 0, 1, open_low=True, why="FGSM takes one step of size ε")
        super().__init__(eps, alpha=eps, steps=1, random_start=False)

    def settings(self) -> dict:
        return {"attack": self.name, "norm": "linf", "eps": self.budget.eps}
