"""Benchmark: indexing a probe set vs a plain batched forward over the same loader, and its memory.

The built-in shapes model on a generated folder of 64×64 PNG images (smooth random colour fields),
in one process: (a) images/s of ``index_job`` (every default layer, top-9, statistics, features,
predictions, thumbnails, the cache written) ÷ images/s of a plain ``pixel_model`` forward under
``no_grad`` over the same ``ProbeSet.batches`` loader, timed alternately, median of the repeats
(goal ≥ 0.85; ``ratio_best`` divides the fastest repeats, less sensitive to other load on the
machine; ``floor_ratio`` is the same plain pass with only what any exact index must add, every
indexed layer's per-channel maximum and sum over every value, as forward hooks), and the same for
a second, more typical CNN (``--second-model``, default an untrained torchvision ResNet-18 at its
own 224 px, on the first ``--second-images`` images); (b) peak memory of the pass over 10,000
images vs 1,000 (goal within 10 %), each in
a fresh child process after the model and the set are open: the peak resident set size (Linux
VmHWM, reset before the pass), its growth during the pass, and tracemalloc's peak (numpy arrays
included); the per-image records (features, thumbnails, predictions) are inherent and reported
apart. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
import numpy as np
import torch
from PIL import Image

from cnnexplorer.core.dataset.index import default_layers, index_job
from cnnexplorer.core.dataset.probe import open_probe_set
from cnnexplorer.core.hooks import forward_hooks
from cnnexplorer.core.jobs import drive
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.models import open_model

BATCH = 64


def write_images(folder: Path, count: int) -> Path:
    """``count`` 64×64 PNG images: 8×8 random colours upsampled, so the files stay small."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cells = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        cells.resize((64, 64), Image.BILINEAR).save(folder / f"{i:05d}.png")
    return folder


def plain_pass(handle, probe) -> None:
    model = handle.pixel_model()
    with torch.no_grad(), eval_mode(handle.module):
        for _, pixels, _ in probe.batches(handle.preprocessing, BATCH):
            model(pixels.to(handle.device))
    if handle.device.type == "cuda":
        torch.cuda.synchronize()  # the last batches' kernels counted too


def floor_pass(handle, probe) -> None:
    """The plain pass plus each default layer's per-channel maximum and sum: the reductions an exact index needs."""
    def reduce(module, args, output):
        flat = output.reshape(output.shape[0], output.shape[1], -1)
        flat.amax(2), flat.sum(2)

    with forward_hooks([(handle.module.get_submodule(name), reduce) for name in default_layers(handle)]):
        plain_pass(handle, probe)


def index_pass(handle, probe, cache: Path):
    with tempfile.TemporaryDirectory(dir=cache) as folder:  # a fresh cache: no reuse, the file written
        return drive(index_job(handle, probe, batch_size=BATCH, cache_dir=Path(folder)))


def throughput(handle, folder: Path, repeats: int, cache: Path) -> dict:
    probe = open_probe_set(str(folder))
    index_pass(handle, probe, cache), plain_pass(handle, probe)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "index": [], "floor": []}
    for _ in range(repeats):
        for name, func in (("plain", lambda: plain_pass(handle, probe)), ("index", lambda: index_pass(handle, probe, cache)),
                           ("floor", lambda: floor_pass(handle, probe))):
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    plain, index = (len(probe) / statistics.median(times[k]) for k in ("plain", "index"))
    return {"images": len(probe), "plain_images_per_s": round(plain, 1), "index_images_per_s": round(index, 1),
            "ratio": round(index / plain, 3), "ratio_best": round(min(times["plain"]) / min(times["index"]), 3),
            "floor_ratio": round(statistics.median(times["plain"]) / statistics.median(times["floor"]), 3)}


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(folder: Path, device: str, cache: Path) -> dict:
    """One pass in this fresh process; memory figures in bytes."""
    handle = drive(open_model("builtin:shapes", device))
    probe = open_probe_set(str(folder))
    plain_pass(handle, probe)  # warm-up: torch's allocations made once
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set size
    before = _vm("VmRSS")
    tracemalloc.start()
    index = index_pass(handle, probe, cache)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    records = (sum(f.nbytes for f in index.features.values()) + index.thumbnails.nbytes + index.top5.nbytes
               + index.top5_probs.nbytes + index.labels.nbytes)
    return {"images": index.count, "peak_rss": _vm("VmHWM"), "rss_growth": _vm("VmHWM") - before,
            "tracemalloc_peak": traced, "records": records}


def memory(folder: Path, counts: tuple[int, int], device: str, cache: Path) -> dict:
    runs = {}
    for count in counts:
        part = folder.parent / f"part{count}"
        if not part.exists():
            part.mkdir()
            for file in sorted(folder.glob("*.png"))[:count]:
                (part / file.name).symlink_to(file)
        out = subprocess.run([sys.executable, __file__, "--child", str(part), "--device", device, "--cache", str(cache)],
                             check=True, capture_output=True, text=True).stdout
        runs[count] = json.loads(out.strip().splitlines()[-1])
    small, large = (runs[c] for c in counts)
    mb = 1 / 2**20
    return {
        "images": list(counts),
        "peak_rss_mb": [round(small["peak_rss"] * mb, 1), round(large["peak_rss"] * mb, 1)],
        "peak_rss_ratio": round(large["peak_rss"] / small["peak_rss"], 3),
        "rss_growth_mb": [round(small["rss_growth"] * mb, 1), round(large["rss_growth"] * mb, 1)],
        "tracemalloc_peak_mb": [round(small["tracemalloc_peak"] * mb, 1), round(large["tracemalloc_peak"] * mb, 1)],
        "records_mb": [round(small["records"] * mb, 1), round(large["records"] * mb, 1)],
        "tracemalloc_peak_less_records_mb": [round((r["tracemalloc_peak"] - r["records"]) * mb, 1) for r in (small, large)],
    }


def second_throughput(spec: str, images: Path, count: int, size: int | None, repeats: int,
                      device: str, cache: Path) -> dict:
    handle = drive(open_model(spec, device))
    if size:
        handle.preprocessing = dataclasses.replace(handle.preprocessing, size=(size, size), resize=None)
    subset = images.parent / f"second{count}"
    subset.mkdir(exist_ok=True)
    for file in sorted(images.glob("*.png"))[:count]:
        (subset / file.name).symlink_to(file)
    return {"model": spec, "input_size": list(handle.preprocessing.size),
            **throughput(handle, subset, repeats, cache)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images for the throughput ratio (default: 2000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--second-model", default="torchvision:resnet18:none",
                        help="the second model's spec; 'none' skips it (default: torchvision:resnet18:none)")
    parser.add_argument("--second-images", type=int, default=512)
    parser.add_argument("--second-size", type=int, help="square input side for the second model (default: its own)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.device, args.cache)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        cache.mkdir()
        images = write_images(root / "images", max(args.images, 0 if args.skip_memory else 10_000,
                                                      0 if args.second_model == "none" else args.second_images))
        subset = root / f"part{args.images}"
        subset.mkdir()
        for file in sorted(images.glob("*.png"))[: args.images]:
            (subset / file.name).symlink_to(file)
        handle = drive(open_model("builtin:shapes", args.device))
        result = {"device": str(handle.device), "threads": torch.get_num_threads(), "batch": BATCH,
                  "throughput": throughput(handle, subset, args.repeats, cache)}
        print(f"indexing ÷ plain forward: {result['throughput']['ratio']} (goal ≥ 0.85)", flush=True)
        if args.second_model != "none":
            result["second"] = second_throughput(args.second_model, images, args.second_images, args.second_size,
                                                 args.repeats, args.device, cache)
            print(f"{args.second_model}: indexing ÷ plain forward: {result['second']['ratio']} (goal ≥ 0.85)",
                  flush=True)
        if not args.skip_memory:
            result["memory"] = memory(images, (1000, 10_000), args.device, cache)
            print(f"peak RSS 10,000 ÷ 1,000 images: {result['memory']['peak_rss_ratio']} (goal ≤ 1.10)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
