"""A run's progress as JSON lines, so another process (the Training tab) can follow a run it launched.

Rank 0 of ``cnnexplorer train --progress-jsonl FILE`` appends one object per line and flushes it:
``{"kind": "ready" | "batch" | "epoch" | "gradients" | "done", …}``. ``record_of`` turns a loop item into
such an object, ``item_of`` turns it back into the same dataclass, and ``ProgressTail`` reads the
complete lines a file has gained since it last looked (a half-written last line waits for its end).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from cnnexplorer.core.training.gradient_flow import GradientFlow
from cnnexplorer.core.training.loop import BatchMetrics, EpochMetrics


def record_of(item) -> dict | None:
    """The JSON object of a loop item (None for items another process does not need: snapshots, progress)."""
    if isinstance(item, BatchMetrics):
        return {"kind": "batch", **asdict(item)}
    if isinstance(item, EpochMetrics):
        return {"kind": "epoch", **asdict(item)}
    if isinstance(item, GradientFlow):
        return {"kind": "gradients", "step": item.step, "layers": list(item.layers),
                "grad_norms": [_number(v) for v in item.grad_norms],
                "update_ratios": [_number(v) for v in item.update_ratios]}
    return None


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def item_of(record: dict):
    """The dataclass a ``record_of`` object came from; other kinds (ready, done) come back as the dict."""
    kind = record.get("kind")
    for cls, name in ((BatchMetrics, "batch"), (EpochMetrics, "epoch")):
        if kind == name:
            return cls(**{f.name: record[f.name] for f in fields(cls)})
    if kind == "gradients":
        values = {k: np.array([np.nan if v is None else v for v in record[k]], dtype=np.float64)
                  for k in ("grad_norms", "update_ratios")}
        return GradientFlow(int(record["step"]), tuple(record["layers"]), **values)
    return record


class ProgressWriter:
    """Appends records to a JSON-lines file, one flushed line each."""

    def __init__(self, path: str | Path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, record: dict | None) -> None:
        if record is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        self.file.close()


class ProgressTail:
    """The records a JSON-lines file gains, read as it grows."""

    def __init__(self, path: str | Path):
        self.path, self.offset, self.partial = Path(path), 0, b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                chunk = file.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]
