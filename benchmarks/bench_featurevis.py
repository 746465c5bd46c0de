"""Benchmark: feature visualisation of 16 channels, torch-lucent vs one channel at a time vs batched.

torchvision googlenet (random weights), layer ``inception4a``, channels 0–15, 128 px images,
FFT + decorrelated colour, Lucid's standard transforms, Adam lr 0.05, the same number of steps
in every run. Lucent's ``render_vis`` (if installed) runs one channel at a time and upsamples
the 128 px image to 224 before the model, through the whole network; our loops stop at the
layer and run at 128 px; the batched loop at 224 px is reported too, so both resolutions are
compared side by side. Speed is channel-steps per second. Activation: each run's final images
judged by the mean of their channel at the resolution that run optimised at (and all at 128 px).
With random weights inception4a's activations are tiny (about 1e-7); only their ratio matters.
``--device`` (default: the GPU when there is one; the goal there is ≥ 20× Lucent, which then
runs on the GPU too). ``--steps`` (default 24 on the CPU, 128 on a GPU, where 24 steps take a
third of a second and the run's start weighs; the app's runs are 256 steps). The last line is one
JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnexplorer.core.featurevis import Settings, evaluate, render_units, unit_objective  # noqa: E402
from cnnexplorer.core.jobs import drive  # noqa: E402
from cnnexplorer.core.models import load_model  # noqa: E402

LAYER = "inception4a"
CHANNELS = list(range(16))


def channel_means(handle, images: torch.Tensor, size: int) -> float:
    """Mean over the 16 images of their own channel's mean activation, images resized to ``size``."""
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=True)
    return float(evaluate(handle, unit_objective("channel", LAYER, CHANNELS), images).mean())


def ours(handle, settings: Settings, batch_size: int) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = drive(render_units(handle, LAYER, CHANNELS, settings=settings, seed=0, batch_size=batch_size))
    return time.perf_counter() - start, result.images


def lucent(handle, steps: int) -> tuple[float, torch.Tensor] | None:
    """Lucent's ``render_vis`` per channel (on the GPU when there is one: Lucent picks it itself)."""
    try:
        from lucent.optvis import param, render
    except ImportError:
        return None
    model = copy.deepcopy(handle.module).eval()  # lucent leaves its hooks on the model it is given
    for p in model.parameters():
        p.requires_grad_(False)

    def run(channels, thresholds) -> list[torch.Tensor]:
        return [torch.from_numpy(render.render_vis(model, f"{LAYER}:{k}",
                                                   lambda: param.image(128, fft=True, decorrelate=True),
                                                   thresholds=thresholds, progress=False,
                                                   show_image=False)[-1]).permute(0, 3, 1, 2)
                for k in channels]

    run(CHANNELS[:1], (2,))  # warm-up, as ours has
    start = time.perf_counter()
    images = run(CHANNELS, (steps,))
    return time.perf_counter() - start, torch.cat(images).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="default: 24 on the CPU, 128 on a GPU")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    args.steps = args.steps or (24 if args.device == "cpu" else 128)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    handle = load_model("torchvision:googlenet:none", args.device)
    work = len(CHANNELS) * args.steps
    settings = Settings(size=128, steps=args.steps, param="fft", preview_every=args.steps)
    drive(render_units(handle, LAYER, CHANNELS[:2], settings=Settings(size=128, steps=2), batch_size=2))  # warm-up

    runs = {}
    runs["single_128"] = (*ours(handle, settings, 1), 128)
    runs["batched_128"] = (*ours(handle, settings, len(CHANNELS)), 128)
    runs["batched_224"] = (*ours(handle, Settings(size=224, steps=args.steps, param="fft",
                                                  preview_every=args.steps), len(CHANNELS)), 224)
    lucent_run = lucent(handle, args.steps)
    if lucent_run is not None:
        runs["lucent_128_to_224"] = (*lucent_run, 224)

    rate, act = {}, {}
    for name, (seconds, images, resolution) in runs.items():
        rate[name] = work / seconds
        act[name] = channel_means(handle, images, resolution)
        act[name + "@128"] = channel_means(handle, images, 128)
        print(f"{name:20s} model input {resolution} px: {seconds:6.1f} s, {1000 * seconds / work:6.1f} ms per "
              f"channel-step, {rate[name]:6.2f} channel-steps/s, final activation {act[name]:.3f} "
              f"(judged at 128 px: {act[name + '@128']:.3f})")

    have_lucent = "lucent_128_to_224" in runs
    if not have_lucent:
        print("torch-lucent is not installed: pip install torch-lucent (it must not change torch)")
    report = {
        "steps": args.steps, "channels": len(CHANNELS), "layer": LAYER, "threads": args.threads,
        "device": str(handle.device),
        "channel_steps_per_s": rate,
        "final_activation": act,
        "effective_resolution": {name: r for name, (_, _, r) in runs.items()},
        "speedup_vs_lucent": rate["batched_128"] / rate["lucent_128_to_224"] if have_lucent else None,
        "speedup_vs_lucent_at_224": rate["batched_224"] / rate["lucent_128_to_224"] if have_lucent else None,
        "activation_vs_lucent": act["batched_128"] / act["lucent_128_to_224"] if have_lucent else None,
        "speedup_batched_vs_single": rate["batched_128"] / rate["single_128"],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
