"""Reading the user's files: only regular files, so a pipe or a device never blocks or floods a read."""

from __future__ import annotations

import stat
from pathlib import Path

from cnnexplorer.core.errors import UserError


def require_regular_file(path: Path, what: str, fix: str, max_bytes: int | None = None) -> None:
    """``UserError`` unless ``path`` is a regular file (of at most ``max_bytes``), checked without opening it.

    Opening a FIFO blocks until something writes to it, and ``/dev/zero`` never ends; both are
    refused here, by ``stat``, before any read.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}; check the path") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}; {fix}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path} is a folder, not {_a(what)}; {fix}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} is not a regular file (a pipe, a device or a socket); {fix}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise UserError(f"{path} is {info.st_size / 1e6:.0f} MB, too large for {_a(what)} "
                        f"(at most {max_bytes / 1e6:.0f} MB); {fix}")


def _a(what: str) -> str:
    """``what`` with its indefinite article: "an image file", "a model file"."""
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"
