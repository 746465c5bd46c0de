"""GUI smoothness while a dataset is indexed.

The built-in shapes model indexes a generated folder of 64×64 PNG images (``bench_index.write_images``;
every default layer, top-9, a fresh cache) in a ``JobRunner`` worker thread, as the Dataset tab does,
while the GUI thread runs its event loop with a 5 ms ``QTimer``: ``worst_stall_ms`` and ``p99_stall_ms``
are the longest and 99th-percentile gaps between its ticks beyond the 5 ms interval (goal: no stall
over 100 ms), beside ``idle_worst_stall_ms``/``idle_p99_stall_ms``, the same timer with nothing running
(the machine's own load). The process is set up as the app sets it (``configure_process``). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cnnexplorer  # noqa: E402,F401 - sets the OpenMP wait policy before torch loads
import torch  # noqa: E402
from bench_index import BATCH, write_images  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cnnexplorer.core.dataset.index import index_job  # noqa: E402
from cnnexplorer.core.dataset.probe import open_probe_set  # noqa: E402
from cnnexplorer.core.jobs import Progress  # noqa: E402
from cnnexplorer.core.models import load_model  # noqa: E402
from cnnexplorer.gui.app import configure_process  # noqa: E402
from cnnexplorer.gui.workers import JobRunner  # noqa: E402


def stalls(gaps: list[float]) -> tuple[float | None, float | None]:
    """The worst and 99th-percentile gap beyond the timer's 5 ms interval, in ms."""
    if not gaps:
        return None, None
    ordered = sorted(gaps)
    return round(ordered[-1] - 5, 1), round(ordered[int(0.99 * (len(ordered) - 1))] - 5, 1)


def timed_loop(app: QApplication, until) -> list[float]:
    """Run the event loop until ``until(loop)`` quits it; the 5 ms timer's gaps in ms."""
    clock, gaps, last = QElapsedTimer(), [], [0.0]

    def tick():
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last[0])
        last[0] = now

    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    until(loop)
    loop.exec()
    timer.stop()
    return gaps[1:]


def measure(images: int, device: str, idle_seconds: float) -> dict:
    app = QApplication.instance() or QApplication([])
    configure_process()
    jobs = JobRunner()
    handle = load_model("builtin:shapes", device)
    with tempfile.TemporaryDirectory(prefix="bench_index_gui-") as tmp:
        probe = open_probe_set(str(write_images(Path(tmp) / "images", images)))
        outcome: dict = {}
        progress: list[Progress] = []

        def run_index(loop: QEventLoop) -> None:
            outcome["start"] = time.perf_counter()

            def done(index):
                outcome["index"], outcome["seconds"] = index, time.perf_counter() - outcome["start"]

            jobs.start(lambda: index_job(handle, probe, batch_size=BATCH, cache_dir=Path(tmp) / "cache"),
                       label="indexing", on_result=done, on_progress=progress.append, on_finished=loop.quit)

        busy = timed_loop(app, run_index)
        if "index" not in outcome:
            raise SystemExit("the index job did not finish")
        idle = timed_loop(app, lambda loop: QTimer.singleShot(int(idle_seconds * 1000), loop.quit))
    worst, p99 = stalls(busy)
    idle_worst, idle_p99 = stalls(idle)
    return {"device": str(handle.device), "threads": torch.get_num_threads(), "images": outcome["index"].count,
            "batch": BATCH, "index_seconds": round(outcome["seconds"], 2), "progress_reports": len(progress),
            "worst_stall_ms": worst, "p99_stall_ms": p99, "stall_samples": len(busy),
            "idle_worst_stall_ms": idle_worst, "idle_p99_stall_ms": idle_p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = measure(args.images, args.device, args.idle_seconds)
    print(f"worst GUI stall while indexing: {result['worst_stall_ms']} ms (goal ≤ 100 ms)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
