"""Benchmark: PGD's cost per step against the ideal, torchattacks' PGD, and batching.

In one process, warm-up then the median of repeats, timings interleaved so load from other
processes hits all sides alike:
(a) our PGD-k (ε 8/255, α 2/255, k = 10, random start, all steps run) on one 224 px image
    through torchvision resnet18 (random weights) ÷ k × one forward+backward-to-the-input
    (the ideal: eval mode, ``autograd.grad`` w.r.t. the input only; goal ≤ 1.1). Ours also pays a
    forward on the clean image and one on the last iterate: ``floor_over_ideal`` times the ideal
    plus those two forwards, the least any attack that reports and judges its result can cost;
(b) torchattacks' PGD with the same settings ÷ the same ideal, when torchattacks is installed
    (the ``bench`` extra);
(c) 64 images attacked in one batched job vs one by one. resnet18 at 224 px × 64 is too slow
    for repeats on a 2-core CPU, so (c) uses the built-in shapes model at 64 px.
The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnexplorer.core.adversarial import PGD  # noqa: E402
from cnnexplorer.core.builtin.shapes_data import generate_shapes  # noqa: E402
from cnnexplorer.core.jobs import drive  # noqa: E402
from cnnexplorer.core.model_handle import eval_mode  # noqa: E402
from cnnexplorer.core.models import load_model  # noqa: E402

STEPS = 10


def interleaved(funcs: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, run in turn ``repeats`` times after one warm-up each."""
    for func in funcs.values():
        func()
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return times


def torchattacks_pgd(model):
    try:
        import torchattacks
    except ImportError:
        return None
    return torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=STEPS, random_start=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    handle = load_model("torchvision:resnet18:none", "cpu")
    model = handle.pixel_model()
    image = torch.randint(0, 256, (1, 3, 224, 224)) / 255
    label = torch.tensor([0])

    def ideal():
        """k forward+backward passes in a row: timed as long as the attacks, so noise hits alike."""
        with eval_mode(model):
            for _ in range(STEPS):
                x = image.clone().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(x), label), x)

    def floor():
        """The ideal plus the two forwards every judged attack needs: the clean image and the last iterate."""
        ideal()
        with eval_mode(model), torch.no_grad():
            model(image)
            model(image)

    funcs = {"ideal": ideal, "floor": floor, "ours": lambda: drive(PGD(steps=STEPS).run(model, image, label))}
    anchor = torchattacks_pgd(model)
    if anchor is not None:
        funcs["torchattacks"] = lambda: anchor(image, label)
    times = interleaved(funcs, args.repeats)
    fwd_bwd = statistics.median(times["ideal"]) / STEPS
    ours = statistics.median(times["ours"])
    theirs = statistics.median(times["torchattacks"]) if anchor is not None else None
    pgd_over_ideal = ours / (STEPS * fwd_bwd)
    floor_over_ideal = statistics.median(times["floor"]) / (STEPS * fwd_bwd)
    ta_over_ideal = theirs / (STEPS * fwd_bwd) if theirs is not None else None

    shapes = load_model("builtin:shapes", "cpu")
    small = shapes.pixel_model()
    data = generate_shapes(64, 1)

    def batched():
        drive(PGD(steps=STEPS).run(small, data.images, data.labels))

    def one_by_one():
        for i in range(len(data.images)):
            drive(PGD(steps=STEPS).run(small, data.images[i : i + 1], data.labels[i : i + 1]))

    batch_times = interleaved({"batched": batched, "single": one_by_one}, max(1, args.repeats // 2))
    batched_s, single_s = statistics.median(batch_times["batched"]), statistics.median(batch_times["single"])

    result = {
        "pgd_over_ideal": round(pgd_over_ideal, 3),
        "floor_over_ideal": round(floor_over_ideal, 3),
        "torchattacks_pgd_over_ideal": round(ta_over_ideal, 3) if ta_over_ideal is not None else None,
        "batched_speedup": round(single_s / batched_s, 2),
        "fwd_bwd_ms": round(fwd_bwd * 1000, 1),
        "pgd_ms": round(ours * 1000, 1),
        "torchattacks_pgd_ms": round(theirs * 1000, 1) if theirs is not None else None,
        "batched_64_s": round(batched_s, 2),
        "one_by_one_64_s": round(single_s, 2),
        "model": "torchvision:resnet18:none", "input": [1, 3, 224, 224], "steps": STEPS,
        "batch_model": "builtin:shapes", "batch_input": [64, 3, 64, 64],
        "device": "cpu", "threads": torch.get_num_threads(), "repeats": args.repeats, "torch": torch.__version__,
    }
    print(f"forward+backward to the input (resnet18, 1x3x224x224): {fwd_bwd * 1000:8.1f} ms")
    print(f"our PGD-{STEPS}:                {ours * 1000:8.1f} ms  = {pgd_over_ideal:.3f} x {STEPS} fwd+bwd (goal <= 1.1)")
    print(f"  floor (+ clean and final forwards): {floor_over_ideal:.3f} x {STEPS} fwd+bwd")
    if theirs is not None:
        print(f"torchattacks PGD-{STEPS}:       {theirs * 1000:8.1f} ms  = {ta_over_ideal:.3f} x {STEPS} fwd+bwd")
    else:
        print("torchattacks not installed (pip install .[bench])")
    print(f"64 shapes images, PGD-{STEPS}: batched {batched_s:.2f} s, one by one {single_s:.2f} s "
          f"({single_s / batched_s:.2f}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
