"""Benchmark: the deletion curve runs batched.

The trained shapes model on 1,000 generated 64 px images, their Grad-CAM maps made first (not
timed). Timed alternately, so that load from other processes hits both: (a) the deletion curve
with 20 steps of every image (``core/faithfulness/perturb.deletion_job``: 19 perturbed images per
image in batches of 128, the end point one shared forward, the start the known probability);
(b) 20 plain forward passes of every image in batches of 128. The ratio of images per second,
(a) ÷ (b), has the goal ≥ 0.8. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
import numpy as np
import torch

from cnnexplorer.core.attribution import compute_heatmaps
from cnnexplorer.core.builtin.shapes_data import validation_set
from cnnexplorer.core.faithfulness.perturb import deletion_job
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.models import load_model

STEPS, BATCH, CHUNK = 20, 128, 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    handle = load_model("builtin:shapes", args.device)
    images = validation_set(args.images).images.to(handle.device)
    maps = torch.from_numpy(np.stack([m.scalar_map for part in images.split(256)
                                      for m in compute_heatmaps(handle, part, "gradcam")]))
    model = handle.pixel_model()
    baseline = torch.tensor(handle.preprocessing.mean)
    with torch.no_grad(), eval_mode(handle.module):
        logits = torch.cat([model(part) for part in images.split(BATCH)])
        targets = logits.argmax(1)
        original = torch.softmax(logits, 1).gather(1, targets[:, None])[:, 0]

        def deletion() -> None:
            for start in range(0, len(images), CHUNK):
                part = slice(start, start + CHUNK)
                drive(deletion_job(model, images[part], maps[part], targets[part], original[part], baseline,
                                   STEPS, BATCH, insertion=False))
            sync()

        def forwards() -> None:
            for _ in range(STEPS):
                for part in images.split(BATCH):
                    model(part)
            sync()

        def sync() -> None:
            if handle.device.type == "cuda":
                torch.cuda.synchronize()

        deletion(), forwards()
        times: dict[str, list[float]] = {"deletion": [], "forwards": []}
        for _ in range(args.repeats):
            for name, func in (("deletion", deletion), ("forwards", forwards)):
                start = time.perf_counter()
                func()
                times[name].append(time.perf_counter() - start)
    deletion_s, forwards_s = (statistics.median(times[k]) for k in ("deletion", "forwards"))
    result = {"images": len(images), "steps": STEPS, "device": str(handle.device),
              "deletion_images_per_s": len(images) / deletion_s,
              "forwards_images_per_s": len(images) / forwards_s,
              "ratio": forwards_s / deletion_s, "goal": 0.8}
    print(f"deletion with {STEPS} steps: {result['deletion_images_per_s']:.1f} images/s; {STEPS} plain forwards: "
          f"{result['forwards_images_per_s']:.1f} images/s; ratio {result['ratio']:.2f} (goal ≥ 0.8)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
