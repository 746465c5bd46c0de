"""Benchmark: every torchvision classifier in the zoo against torchvision's own model and transforms.

For each architecture, one at a time: random values in the published layout (scaled so that the
input reaches the logits, see ``randomised`` in the test) go into a temporary
torch hub cache under the DEFAULT weights' published file name; torchvision's
``get_model(arch, weights=W)`` with ``W.transforms()`` and our ``torchvision:ARCH`` (its own
preprocessing) classify the same photo-like pictures (640×480, 480×640, 1000×300); the cache is
deleted after each. The CI test does this for a representative set (the whole zoo holds
vit_h_14, 632 M parameters); this runs all of them and takes many minutes on a CPU.
Run from the repository root: ``python benchmarks/torchvision_parity.py [ARCH ...]``.
The last line is one JSON object: per architecture the largest probability and logit differences
and the parameter counts (ours, torchvision's, published), then a summary.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cnnexplorer  # noqa: E402,F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
import torchvision  # noqa: E402

from cnnexplorer.core.models import torchvision_classifiers  # noqa: E402
from tests.core.test_torchvision_parity import LOGIT_TOLERANCE, PROB_TOLERANCE, parity  # noqa: E402


def measure(arch: str) -> dict:
    """One architecture in a fresh temporary hub cache, deleted afterwards."""
    folder = tempfile.mkdtemp(prefix="tv-parity-")
    os.environ["TORCH_HOME"] = folder
    start = time.perf_counter()
    try:
        found = parity(arch)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        gc.collect()
    published = torchvision.models.get_model_weights(arch).DEFAULT.meta["num_params"]
    ok = (found.params == found.torchvision_params == published and found.probabilities <= PROB_TOLERANCE
          and found.logits <= LOGIT_TOLERANCE * found.logit_scale)
    return {"max_prob_diff": found.probabilities, "max_logit_diff": found.logits, "logit_scale": found.logit_scale,
            "params": found.params, "torchvision_params": found.torchvision_params, "published_params": published,
            "ok": ok, "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", help="architectures to compare (default: every zoo classifier)")
    archs = parser.parse_args().archs or torchvision_classifiers()
    results = {}
    for arch in archs:
        results[arch] = measure(arch)
        print(arch, json.dumps(results[arch]), flush=True)
    failed = [arch for arch, r in results.items() if not r["ok"]]
    summary = {
        "architectures": len(results),
        "all_equal": not failed,
        "failed": failed,
        "max_prob_diff": max(r["max_prob_diff"] for r in results.values()),
        "max_relative_logit_diff": max(r["max_logit_diff"] / max(r["logit_scale"], 1e-30)
                                       for r in results.values()),
        "params_equal_torchvision": all(r["params"] == r["torchvision_params"] == r["published_params"]
                                        for r in results.values()),
        "tolerances": {"probability": PROB_TOLERANCE, "logit_relative": LOGIT_TOLERANCE},
        "torch": __import__("torch").__version__, "torchvision": torchvision.__version__,
    }
    print(json.dumps({"results": results, "summary": summary}))
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
