"""Benchmark: PGD's cost per step against the ideal, torchattacks' PGD, and batching.

In one process, after a warm-up, timings interleaved so load from other processes hits all
sides alike; each ratio is the median over the repeats of a time ÷ the ideal's in the same repeat:
(a) our PGD-k (ε 8/255, α 2/255, random start, all steps run) on one 224 px image through
    torchvision resnet18 (random weights) ÷ k × one forward+backward-to-the-input (the ideal:
    eval mode, ``autograd.grad`` w.r.t. the input only; goal ≤ 1.1), for k = 10, 20 and 40.
    Ours also pays a forward on the clean image and one on the last iterate: ``floor`` is the
    ideal plus those two forwards, the least any attack that reports and judges its result can
    cost. ``given_clean`` times ours handed the clean image's probabilities, as a robustness
    curve does (one clean forward per batch, shared by every attack and ε): its floor is the
    ideal plus one forward;
(b) torchattacks' PGD with the same settings ÷ the same ideal, when torchattacks is installed
    (the ``bench`` extra);
(c) 64 images attacked in one batched job vs one by one. resnet18 at 224 px × 64 is too slow
    for repeats on a 2-core CPU, so (c) uses the built-in shapes model at 64 px.
``pgd_over_ideal``, ``pgd_given_clean_over_ideal`` and ``torchattacks_pgd_over_ideal`` are the
k = 10 figures (torchattacks' default); ``by_steps`` has every k. The last line is one JSON object.
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

from cnnexplorer.core.adversarial import PGD, clean_probabilities  # noqa: E402
from cnnexplorer.core.builtin.shapes_data import generate_shapes  # noqa: E402
from cnnexplorer.core.jobs import drive  # noqa: E402
from cnnexplorer.core.model_handle import eval_mode  # noqa: E402
from cnnexplorer.core.models import load_model  # noqa: E402

STEPS = (10, 20, 40)


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


def torchattacks_pgd(model, steps: int):
    try:
        import torchattacks
    except ImportError:
        return None
    return torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=steps, random_start=True)


def pgd_cost(model, image, label, repeats: int) -> dict[int, dict[str, float]]:
    """Seconds per repeat of the ideal, the floor, ours (alone, and given the clean probabilities)
    and torchattacks' PGD, for each k in STEPS."""
    before = clean_probabilities(model, image)

    def ideal(steps):
        """k forward+backward passes in a row: timed as long as the attacks, so noise hits alike."""
        with eval_mode(model):
            for _ in range(steps):
                x = image.clone().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(x), label), x)

    def floor(steps):
        """The ideal plus the two forwards every judged attack needs: the clean image and the last iterate."""
        ideal(steps)
        with eval_mode(model), torch.no_grad():
            model(image)
            model(image)

    funcs = {}
    for steps in STEPS:
        funcs[steps, "ideal"] = lambda steps=steps: ideal(steps)
        funcs[steps, "floor"] = lambda steps=steps: floor(steps)
        funcs[steps, "ours"] = lambda steps=steps: drive(PGD(steps=steps).run(model, image, label))
        funcs[steps, "given_clean"] = lambda steps=steps: drive(PGD(steps=steps).run(model, image, label,
                                                                                     before=before))
        anchor = torchattacks_pgd(model, steps)
        if anchor is not None:
            funcs[steps, "torchattacks"] = lambda anchor=anchor: anchor(image, label)
    times = interleaved(funcs, repeats)
    costs: dict[int, dict[str, list[float]]] = {steps: {} for steps in STEPS}
    for (steps, name), seconds in times.items():
        costs[steps][name] = seconds
    return costs


def over_ideal(costs: dict[str, list[float]], name: str) -> float:
    """Median over the repeats of ``name``'s time ÷ the ideal's in the same repeat (timed moments apart,
    so both share that moment's load)."""
    return statistics.median(t / ideal for t, ideal in zip(costs[name], costs["ideal"]))


def batch_speedup(repeats: int) -> tuple[float, float]:
    """Seconds for 64 shapes images attacked in one batch, and one by one."""
    small = load_model("builtin:shapes", "cpu").pixel_model()
    data = generate_shapes(64, 1)
    steps = STEPS[0]

    def batched():
        drive(PGD(steps=steps).run(small, data.images, data.labels))

    def one_by_one():
        for i in range(len(data.images)):
            drive(PGD(steps=steps).run(small, data.images[i : i + 1], data.labels[i : i + 1]))

    times = interleaved({"batched": batched, "single": one_by_one}, max(1, repeats // 2))
    return statistics.median(times["batched"]), statistics.median(times["single"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load_model("torchvision:resnet18:none", "cpu").pixel_model()
    image = torch.randint(0, 256, (1, 3, 224, 224)) / 255
    label = torch.tensor([0])
    costs = pgd_cost(model, image, label, args.repeats)
    by_steps = {}
    for k, times in costs.items():
        floor = over_ideal(times, "floor")
        theirs = over_ideal(times, "torchattacks") if "torchattacks" in times else None
        by_steps[k] = {
            "pgd_over_ideal": round(over_ideal(times, "ours"), 3),
            "floor_over_ideal": round(floor, 3),
            "pgd_given_clean_over_ideal": round(over_ideal(times, "given_clean"), 3),
            "floor_given_clean_over_ideal": round((1 + floor) / 2, 3),
            "torchattacks_pgd_over_ideal": round(theirs, 3) if theirs is not None else None,
            **{f"{name}_ms": round(statistics.median(t) * 1000, 1) for name, t in times.items()},
        }
    fwd_bwd = statistics.median(costs[STEPS[0]]["ideal"]) / STEPS[0]
    batched_s, single_s = batch_speedup(args.repeats)

    headline = by_steps[STEPS[0]]
    result = {
        "pgd_over_ideal": headline["pgd_over_ideal"],
        "floor_over_ideal": headline["floor_over_ideal"],
        "pgd_given_clean_over_ideal": headline["pgd_given_clean_over_ideal"],
        "floor_given_clean_over_ideal": headline["floor_given_clean_over_ideal"],
        "torchattacks_pgd_over_ideal": headline["torchattacks_pgd_over_ideal"],
        "batched_speedup": round(single_s / batched_s, 2),
        "fwd_bwd_ms": round(fwd_bwd * 1000, 1),
        "batched_64_s": round(batched_s, 2), "one_by_one_64_s": round(single_s, 2),
        "by_steps": by_steps,
        "model": "torchvision:resnet18:none", "input": [1, 3, 224, 224], "steps": list(STEPS),
        "batch_model": "builtin:shapes", "batch_input": [64, 3, 64, 64],
        "device": "cpu", "threads": torch.get_num_threads(), "repeats": args.repeats, "torch": torch.__version__,
    }
    print(f"forward+backward to the input (resnet18, 1x3x224x224): {fwd_bwd * 1000:.1f} ms")
    for k, row in by_steps.items():
        anchor = (f", torchattacks {row['torchattacks_pgd_over_ideal']:.3f}" if row["torchattacks_pgd_over_ideal"]
                  else " (torchattacks not installed: pip install .[bench])")
        print(f"PGD-{k:<3d} ours {row['ours_ms']:8.1f} ms = {row['pgd_over_ideal']:.3f} x ideal (goal <= 1.1), "
              f"floor {row['floor_over_ideal']:.3f}; given the clean probabilities "
              f"{row['pgd_given_clean_over_ideal']:.3f}, floor {row['floor_given_clean_over_ideal']:.3f}{anchor}")
    print(f"64 shapes images, PGD-{STEPS[0]}: batched {batched_s:.2f} s, one by one {single_s:.2f} s "
          f"({single_s / batched_s:.2f}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
