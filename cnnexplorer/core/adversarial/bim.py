"""Basic iterative method / I-FGSM (Kurakin et al. 2017): PGD from the image itself, no random start."""

from __future__ import annotations

from cnnexplorer.core.adversarial.pgd import PGD


class BIM(PGD):
    name = "bim"

    def __init__(self, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10, early_stop: bool = False):
        super().__init__(eps, alpha, steps, random_start=False, early_stop=early_stop)
