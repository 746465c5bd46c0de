"""Benchmark: the default shapes recipe (``cnnexplorer train --model builtin:shapes --scratch --data
builtin:shapes``) from scratch, as a user runs it: its final validation accuracy (goal ≥ 95 %) and its
CPU time (goal ≤ 3 minutes of both cores, i.e. 360 CPU seconds: wall time stretches with other load on the
machine, CPU time much less). Last line: JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import cnnexplorer  # noqa: F401 - sets the OpenMP wait policy before torch loads
from cnnexplorer.cli import main as cli


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = io.StringIO()
        cpu, wall = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = cli(["train", "--model", "builtin:shapes", "--scratch", "--data", "builtin:shapes",
                        "--out", str(Path(folder) / "shapes.pt"), "--json"])
        report = json.loads(out.getvalue().strip().splitlines()[-1])
        result = {"exit": code, "epochs": report["epochs"], "final_val_acc": report["final_val_acc"],
                  "cpu_seconds": round(time.process_time() - cpu, 1), "wall_seconds": round(time.perf_counter() - wall, 1)}
    print(f"final validation accuracy {result['final_val_acc']:.3f} (goal ≥ 0.95), "
          f"{result['cpu_seconds']} CPU s (goal ≤ 360)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
