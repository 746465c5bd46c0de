"""Distributed training throughput: images/s of ``cnnexplorer train`` in 1 process vs N CPU processes (gloo).

The same run both ways: ShapesNet from scratch on a folder of generated 64×64 shapes (PNG files,
so decoding is part of the work and is shared out by the DistributedSampler), one epoch, the same
global batch (``--batch-size`` B in one process, B/N in each of N). Images/s is measured from rank
0's progress lines, from the end of the first ``--warmup`` steps to the last step (start-up,
validation and checkpoints are not counted). One process uses every core (torch's threads); torchrun
gives each of its N processes one thread, so on a machine with N cores this compares intra-op
threading against data parallelism. ``--processes`` sets N (default 2). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cnnexplorer  # noqa: F401 - sets the OpenMP wait policy before torch loads
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, generate_shapes
from PIL import Image


def write_folder(root: Path, count: int) -> Path:
    done = 0
    while done < count:
        batch = generate_shapes(min(256, count - done), 7 + done)
        for image, label in zip(batch.images, batch.labels):
            folder = root / SHAPE_CLASSES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (image.permute(1, 2, 0).numpy() * 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{done:05d}.png")
            done += 1
    return root


def images_per_s(progress: Path, warmup: int) -> float:
    batches = [r for r in map(json.loads, progress.read_text().splitlines()) if r["kind"] == "batch"]
    first, last = batches[warmup - 1], batches[-1]
    ready = next(r for r in map(json.loads, progress.read_text().splitlines()) if r["kind"] == "ready")
    return (last["step"] - first["step"]) * ready["global_batch"] / (last["elapsed_s"] - first["elapsed_s"])


def run(folder: Path, work: Path, processes: int, batch: int, warmup: int) -> dict:
    progress = work / f"progress-{processes}.jsonl"
    progress.unlink(missing_ok=True)
    command = [sys.executable, "-m", "cnnexplorer", "train", "--model", "builtin:shapes", "--scratch", "--data",
               f"folder:{folder}", "--val-split", "0.1", "--epochs", "1", "--batch-size", str(batch // processes),
               "--device", "cpu", "--out", str(work / f"run-{processes}.pt"), "--progress-jsonl", str(progress)]
    if processes > 1:
        command += ["--nproc-per-node", str(processes)]
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"processes": processes, "images_per_s": round(images_per_s(progress, warmup), 1),
            "wall_s": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="images in the folder (default 2048)")
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out at the start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = write_folder(work / "shapes", args.images)
        one = run(folder, work, 1, args.batch, args.warmup)
        many = run(folder, work, args.processes, args.batch, args.warmup)
    result = {"one_process": one, "n_processes": many, "speedup": round(many["images_per_s"] / one["images_per_s"], 2),
              "global_batch": args.batch, "images": args.images, "cpus": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2)}
    print(f"1 process: {one['images_per_s']} images/s; {args.processes} processes: {many['images_per_s']} images/s "
          f"(×{result['speedup']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
