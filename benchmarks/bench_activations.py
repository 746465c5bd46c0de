"""Benchmark: capturing every layer vs a plain forward, and switching to a cached layer.

torchvision resnet50 (random weights) at 224 px on the CPU, in one process: warm-up, then the
median (and best) of repeats, the forward and the capture timed alternately. (a) ``capture`` of all
modules ÷ a plain forward through the same ``pixel_model`` under ``no_grad`` (goal ≤ 1.3);
(b) switching to a cached 256-channel 56×56 layer (``layer1.0``) until the grid array is
ready (goal ≤ 30 ms), and until the labelled picture is ready. The last line is one JSON object.

The process runs as the app does, with passive OpenMP waiting (set by importing cnnexplorer).
On a busy 2-core machine torch's two OpenMP threads stall waiting for each other, which
swamps both timings; ``--threads 1`` gives steadier figures there."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cnnexplorer  # noqa: F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
import torch

from cnnexplorer.core.activations import ActivationCache, activation_grid, capture, render_activation_picture
from cnnexplorer.core.model_handle import eval_mode
from cnnexplorer.core.models import load_model

LAYER = "layer1.0"
REPEATS = 9


def median_ms(func, repeats: int = REPEATS, warmup: int = 2) -> float:
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_ms(first, second, repeats: int = REPEATS) -> tuple[list[float], list[float]]:
    """Times of two functions run alternately, so that load from other processes hits both."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for func, bucket in zip((first, second), times):
            start = time.perf_counter()
            func()
            bucket.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    handle = load_model("torchvision:resnet50:none", "cpu")
    pixels = torch.rand(3, 224, 224)

    def forward():
        with torch.no_grad(), eval_mode(handle.module):
            handle.pixel_model()(pixels[None])

    forward_times, capture_times = interleaved_ms(forward, lambda: capture(handle, pixels))
    forward_ms, capture_ms = statistics.median(forward_times), statistics.median(capture_times)
    recorded = capture(handle, pixels)
    captured_mb = recorded.nbytes / 2**20
    del recorded

    cache = ActivationCache()
    cache.get_or_capture(handle, pixels, "conv1", image_key="bench")
    shape = tuple(cache.get_or_capture(handle, pixels, LAYER, image_key="bench").shape)

    def switch():
        return activation_grid(cache.get_or_capture(handle, pixels, LAYER, image_key="bench"))

    switch_ms = median_ms(switch, repeats=15)
    grid = switch()
    picture_ms = median_ms(lambda: render_activation_picture(switch()), repeats=15)
    assert cache.forward_passes == 1, "a cached switch ran the model again"

    result = {
        "capture_over_forward": round(capture_ms / forward_ms, 3),
        "capture_over_forward_best": round(min(capture_times) / min(forward_times), 3),
        "cached_switch_ms": round(switch_ms, 2),
        "cached_switch_picture_ms": round(picture_ms, 2),
        "forward_ms": round(forward_ms, 1),
        "capture_all_ms": round(capture_ms, 1),
        "captured_mb": round(captured_mb, 1),
        "layers_captured": len(capture(handle, pixels).layers()),
        "switch_layer": LAYER,
        "switch_shape": list(shape),
        "model": "torchvision:resnet50:none",
        "input": [3, 224, 224],
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"plain forward                 {forward_ms:8.1f} ms")
    print(f"capture all {result['layers_captured']} outputs      {capture_ms:8.1f} ms  "
          f"({result['capture_over_forward']:.2f}x forward, best of {REPEATS} "
          f"{result['capture_over_forward_best']:.2f}x; goal <= 1.3; {captured_mb:.0f} MB)")
    print(f"cached switch to {LAYER} {list(shape)}: grid {switch_ms:.1f} ms (goal <= 30), "
          f"with labelled picture {picture_ms:.1f} ms; grid {grid.values.shape}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
