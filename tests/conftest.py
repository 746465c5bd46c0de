"""Shared test set-up: headless Qt, few threads, deterministic torch."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

torch.set_num_threads(2)
