"""Training overhead and GUI smoothness.

``trainer_over_bare``: images/s of ``core.training.loop.train`` with its live per-batch metrics
(loss, accuracy, learning rate, throughput, ETA, a schedule step) ÷ a bare PyTorch loop (forward,
cross-entropy, backward, AdamW step): same model (ShapesNet), same pre-generated batches, batch
size, device, precision and memory layout (on CUDA by default fp16 autocast with loss scaling and
channels-last, as the trainer's "auto"), each timed from its first batch's end to its last's (so
epoch-end validation and snapshots, once per epoch, are not counted); median of alternating
repeats after a warm-up.
``worst_stall_ms``: the longest gap beyond its 5 ms interval of a GUI-thread timer while the
Training tab trains LeNet-5 on generated shapes (metrics every batch, curves redrawn at 10 Hz),
beside ``idle_worst_stall_ms``, the same timer with nothing running (the machine's own load).
``redraw_100k_ms``/``paint_100k_ms``: adding 10 points to a 100,000-point run, then painting.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cnnexplorer  # noqa: E402,F401 - sets the OpenMP wait policy before torch loads
import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnexplorer.core.builtin import BUILTIN_MODELS  # noqa: E402
from cnnexplorer.core.builtin.shapes_data import SHAPE_CLASSES, generate_shapes  # noqa: E402
from cnnexplorer.core.jobs import drive  # noqa: E402
from cnnexplorer.core.model_handle import ModelHandle  # noqa: E402
from cnnexplorer.core.training.data import DataSource  # noqa: E402
from cnnexplorer.core.training.config import TrainConfig  # noqa: E402
from cnnexplorer.core.training.loop import train  # noqa: E402


def fixed_data(batches: int, batch_size: int) -> tuple[DataSource, list]:
    train_set = [(b.images, b.labels) for b in (generate_shapes(batch_size, 1000 + k) for k in range(batches))]
    val = generate_shapes(64, 99)

    def train_batches(batch_size_, seed, epoch):
        return iter(train_set)

    def val_batches(batch_size_):
        return iter([(val.images, val.labels)])

    source = DataSource("bench", list(SHAPE_CLASSES), batches * batch_size, 64, train_batches, val_batches)
    return source, train_set


def fresh_handle(device: torch.device) -> ModelHandle:
    entry = BUILTIN_MODELS["shapes"]
    torch.manual_seed(0)
    return ModelHandle("builtin:shapes", entry.build().to(device), device, entry.preprocessing,
                       list(entry.class_names), "none", False)


def run_trainer(device, data, config) -> float:
    """Seconds from the first batch's metrics to the last's (epoch-end validation and snapshots excluded)."""
    from cnnexplorer.core.training.loop import BatchMetrics

    handle = fresh_handle(device)
    stamps = []

    def stamp(item):
        if isinstance(item, BatchMetrics):
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    drive(train(handle, data, config, arch="builtin:shapes"), stamp)
    return stamps[-1] - stamps[0]


def run_bare(device, batches, config) -> float:
    """Seconds from the end of the first step to the end of the last, as for the trainer; in the trainer's
    precision and memory layout (on CUDA by default fp16 autocast with loss scaling, channels-last)."""
    handle = fresh_handle(device)
    model = handle.pixel_model()
    model.train()
    amp, channels_last = config.autocast_dtype(device), config.uses_channels_last(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    stamps = []
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return stamps[-1] - stamps[0]


def throughput_ratio(device: torch.device, batches: int, batch_size: int, repeats: int) -> dict:
    data, train_set = fixed_data(batches, batch_size)
    config = TrainConfig(epochs=1, batch_size=batch_size)
    run_trainer(device, fixed_data(3, batch_size)[0], config)
    run_bare(device, train_set[:3], config)
    trainer, bare = [], []
    for _ in range(repeats):
        trainer.append(run_trainer(device, data, config))
        bare.append(run_bare(device, train_set, config))
    images = (batches - 1) * batch_size  # the first batch of each side is its warm-up
    return {"trainer_images_per_s": images / statistics.median(trainer),
            "bare_images_per_s": images / statistics.median(bare),
            "trainer_over_bare": statistics.median(bare) / statistics.median(trainer)}


def worst_stall(seconds: float) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from cnnexplorer.core.models import load_model
    from cnnexplorer.gui.app import configure_process
    from cnnexplorer.gui.session import Session
    from cnnexplorer.gui.views.training_view import TrainingView
    from cnnexplorer.gui.workers import JobRunner

    app = QApplication.instance() or QApplication([])
    configure_process()
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    view.resize(1500, 950)
    view.show()
    session.set_model(load_model("builtin:lenet5", "cpu"))
    view.settings.epochs.setValue(1)
    folder = tempfile.TemporaryDirectory(prefix="bench_training-")  # a fresh file: no overwrite question
    view.settings.out.setText(os.path.join(folder.name, "bench_training.pt"))
    clock, gaps, last = QElapsedTimer(), [], [0]
    clock.start()

    def tick():
        now = clock.elapsed()
        if view.run is not None and view.run.history.step:  # measure once batches flow
            gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    view.start()
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline and (not view.run.history.step or len(gaps) * 0.005 < seconds):
        app.processEvents()
        time.sleep(0.001)
    measured = list(gaps)
    view.stop()
    jobs.wait(30_000)
    gaps.clear()
    idle_end = time.monotonic() + seconds / 2
    while time.monotonic() < idle_end:  # the same timer with nothing running: what the machine's load alone costs
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    folder.cleanup()
    idle = list(gaps)
    return {"worst_stall_ms": max(measured) - 5 if measured else None,
            "p99_stall_ms": sorted(measured)[int(0.99 * (len(measured) - 1))] - 5 if measured else None,
            "idle_worst_stall_ms": max(idle) - 5 if idle else None, "stall_samples": len(measured),
            "gui_batches": len(view.run.history.step), **redraw_time(view)}


def redraw_time(view) -> dict:
    """Milliseconds to add 10 points to a 100,000-point run and update the curves, then to paint them."""
    import numpy as np

    from cnnexplorer.core.training.curves import History

    n = 100_000
    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1, dtype=float)
    history = History(step=list(steps), epoch=list(steps / 1000), time=list(steps / 100),
                      loss=list(np.exp(-steps / 3e4) + rng.random(n) * 0.1), acc=list(rng.random(n)),
                      lr=list(np.full(n, 1e-3)), images_per_s=list(np.full(n, 500.0)))
    run = view.curves.add_run("100k", history)
    view.curves.redraw()
    times, paints = [], []
    for k in range(5):
        start = time.perf_counter()
        for i in range(10):
            for name in ("step", "epoch", "time", "loss", "acc", "lr", "images_per_s"):
                getattr(history, name).append(getattr(history, name)[-1] + (1.0 if name == "step" else 0.0))
        view.curves.mark_dirty(run)
        view.curves.redraw()
        middle = time.perf_counter()
        view.curves.graphics.grab()  # a full software paint of the three plots: downsampling and clipping
        times.append((middle - start) * 1000)
        paints.append((time.perf_counter() - middle) * 1000)
    return {"redraw_100k_ms": statistics.median(times), "paint_100k_ms": statistics.median(paints)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stall-seconds", type=float, default=8.0)
    parser.add_argument("--no-gui", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)) if args.device == "cpu" else torch.get_num_threads())
    device = torch.device(args.device)
    result = {"device": str(device), "batch_size": args.batch_size, "batches": args.batches,
              **throughput_ratio(device, args.batches, args.batch_size, args.repeats)}
    print(f"trainer {result['trainer_images_per_s']:.0f} images/s, bare {result['bare_images_per_s']:.0f} images/s "
          f"→ {result['trainer_over_bare']:.3f}", file=sys.stderr)
    if not args.no_gui:
        result.update(worst_stall(args.stall_seconds))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
