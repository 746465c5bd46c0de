"""Feature visualisation can be stopped after any step, not only after the next preview."""

from __future__ import annotations

import time

from cnnexplorer.core.featurevis import Settings, optimize
from cnnexplorer.core.featurevis import objectives as obj
from cnnexplorer.core.jobs import Progress
from cnnexplorer.core.models import load_model


def test_every_step_yields_so_a_cancel_takes_effect_within_one_step():
    handle = load_model("builtin:shapes", "cpu")
    settings = Settings(size=32, steps=12, preview_every=8, transforms=False)
    job = optimize(handle, obj.channel("features.2", [0, 1]), 2, settings)
    kinds = []
    for _ in range(settings.steps):
        kinds.append(type(next(job)).__name__)
    assert len(kinds) == settings.steps, "one item per step"
    assert [i + 1 for i, kind in enumerate(kinds) if kind == "Step"] == [8, 12]  # the previews: every 8th, and the last
    assert kinds.count("Progress") == settings.steps - 2
    job.close()  # what the runner does on cancel: the generator stops where it is


def test_closing_a_long_run_after_its_first_step_returns_at_once():
    handle = load_model("builtin:shapes", "cpu")
    job = optimize(handle, obj.channel("features.4", list(range(8))), 8,
                   Settings(size=64, steps=10_000, preview_every=1000))
    first = next(job)
    assert isinstance(first, Progress) and first.done == 1 and first.total == 10_000
    start = time.monotonic()
    next(job)  # one more step, then the caller stops
    job.close()
    assert time.monotonic() - start < 1.0
