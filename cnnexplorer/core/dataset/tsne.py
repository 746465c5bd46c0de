"""A t-SNE map of a layer's pooled features, through openTSNE (an optional extra: ``cnnexplorer[tsne]``).

t-SNE keeps each point's nearest neighbours near it, so clusters the layer separates show as islands,
where PCA shows only the two directions of largest variance. openTSNE (FFT-accelerated, the field's
library for large sets: 20,000 points in about 20 s on two cores) runs on a thread of its own; the job
reports its iterations and, when cancelled, stops it at its next report. The same features always
give the same map (PCA initialisation, a fixed seed). The perplexity is 30, or a third of the other
points on a small set.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress

if TYPE_CHECKING:
    from cnnexplorer.core.dataset.projection import Projection

PERPLEXITY = 30.0
MIN_POINTS = 5
ITERATIONS = 250 + 500  # openTSNE's: early exaggeration, then the embedding itself
REPORT_EVERY = 25
POLL_S = 0.1
INSTALL = "pip install 'cnnexplorer[tsne]'"


def tsne_job(features: np.ndarray, seed: int = 0) -> Job[Projection]:
    """The t-SNE ``Projection`` of ``features`` ``[N,D]``; yields ``Progress`` per ``REPORT_EVERY`` iterations."""
    from cnnexplorer.core.dataset.projection import Projection

    try:
        from openTSNE import TSNE
        from openTSNE.tsne import OptimizationInterrupt
    except ImportError:
        raise UserError(f"t-SNE maps need openTSNE, an optional part of cnnexplorer: {INSTALL} (or choose PCA)") from None
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or len(data) < MIN_POINTS:
        raise UserError(f"a t-SNE map needs the features of at least {MIN_POINTS} images, not {len(data)}; "
                        "choose PCA, or index more images")
    count = len(data)
    if (data == data[0]).all():
        raise UserError(f"the {count:,} images have the same features in this layer, so a t-SNE map has no neighbours "
                        "to keep apart; choose PCA, another feature layer, or images that differ")
    perplexity = min(PERPLEXITY, (count - 1) / 3)
    stop, done, outcome = threading.Event(), [0], {}

    def report(iteration, error, embedding) -> bool:
        done[0] += REPORT_EVERY
        return stop.is_set()

    def run() -> None:
        try:
            outcome["points"] = np.asarray(TSNE(2, perplexity=perplexity, random_state=seed, n_jobs=os.cpu_count() or 1,
                                                callbacks=report, callbacks_every_iters=REPORT_EVERY).fit(data))
        except OptimizationInterrupt:
            pass  # stopped by a cancel: the job has ended already
        except Exception as exc:  # noqa: BLE001 - raised again on the job's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="t-SNE", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_S)
            step = min(done[0], ITERATIONS)
            yield Progress(step, ITERATIONS, f"t-SNE of {count:,} points: iteration {step} of {ITERATIONS}")
    finally:
        stop.set()  # cancelled (the generator closed): the run stops at its next report
    if "error" in outcome:
        raise outcome["error"]
    if not np.isfinite(outcome["points"]).all():
        raise UserError(f"t-SNE gave no map of these {count:,} images (too few of them differ in this layer); "
                        "choose PCA or another feature layer")
    return Projection(outcome["points"].astype(np.float32), None, None, "tsne", perplexity)
