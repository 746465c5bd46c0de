"""Writing the user's files without losing any: outputs checked before the work, writes atomic.

``check_outputs`` runs before a command does any work: every output must be a file name (not
empty, not an existing folder, not under a regular file, short enough for the file system) in a
folder that can be written, and none may be the same file as an input or as another output.

``atomic_write_bytes`` writes to a temporary file beside the target and renames it into place,
so a failed write leaves the old file as it was. A link at the target is replaced, never
followed; the file gets the permissions a plain ``open`` would give it (the umask), or keeps
those of the file it replaces; temporaries left by a killed run are removed by the next write
to the same path (``remove_stale_temporaries``: not those of another process still writing it); an
``OSError`` becomes one ``UserError`` line naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from cnnexplorer.core.errors import UserError

TMP_SUFFIX = ".tmp"
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
_TMP_EXTRA = len(".") + len(".0000000.") + 8 + len(TMP_SUFFIX)  # ".NAME.PID.XXXXXXXX.tmp" around the name
STALE_TEMPORARY_S = 3600.0  # a temporary this old is a killed writer's, whoever wrote it
_FIXES = {
    errno.ENOSPC: "free some space or choose another folder",
    errno.EDQUOT: "free some space or choose another folder",
    errno.EFBIG: "the file system refuses a file this large; choose another folder",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "the folder is on a read-only file system; choose another folder",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
}

PathLike = str | os.PathLike


def _entry(path: PathLike) -> Path:
    """The directory entry ``path`` names: its folder resolved, its last part kept as it is."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path(path.anchor)


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same directory entry."""
    return _entry(a) == _entry(b)


def check_output(label: str, path: PathLike) -> None:
    """``UserError`` unless ``path`` can be written as a file (its folders are created if missing)."""
    if not str(path).strip():
        raise UserError(f"{label} is empty; give a file name")
    path = Path(os.path.abspath(path))
    for part in path.parts[1:]:
        if len(os.fsencode(part)) + _TMP_EXTRA > NAME_MAX:
            raise UserError(f"{label}: the name '{part[:40]}…' is too long for the file system "
                            f"(at most {NAME_MAX - _TMP_EXTRA} bytes); choose a shorter name")
    if path.is_dir():
        raise UserError(f"{label} {path} is a folder; give a file name inside it")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise UserError(f"{label} {path} is under {folder}, which is a file, not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{label} {path} cannot be written: the folder {folder} is not writable; "
                        "choose a folder you can write to")


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None] | None = None) -> None:
    """Check every output (``check_output``) and that no two of the files named are the same.

    Keys are the names the user knows the paths by (``--out``, ``the sidecar``). An input is
    matched by its own name and by the file it finally points to, so writing over a link's
    target is caught too.
    """
    taken: dict[Path, str] = {}
    for label, path in (inputs or {}).items():
        if path is not None and str(path).strip():
            taken.setdefault(_entry(path), label)
            taken.setdefault(Path(os.path.realpath(path)), label)
    written: dict[Path, str] = {}
    for label, path in outputs.items():
        if path is None:
            continue
        check_output(label, path)
        entry = _entry(path)
        if entry in taken:
            raise UserError(f"{label} {path} is the same file as the input {taken[entry]}; writing it would "
                            "destroy the input: choose another name")
        if entry in written:
            raise UserError(f"{label} and {written[entry]} are the same file ({path}); give each output its own name")
        written[entry] = label


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module notes); ``UserError`` on failure."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> None:
    """``write`` the file ``path`` through the open binary handle it is given, atomically (see the module
    notes): a large file streams to disk instead of first being built whole in memory."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        mode = _mode_for(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        fix = _FIXES.get(exc.errno, "choose another path")
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; {fix}") from None


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries that writers of ``path`` killed mid-write left beside it. Another process of this
    machine still writing the same path keeps its own: on POSIX those of a running process are kept (unless
    older than ``STALE_TEMPORARY_S``); on Windows a file another process holds open cannot be removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]{{8}}{re.escape(TMP_SUFFIX)}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        found = pattern.fullmatch(name)
        if not found:
            continue
        file = path.parent / name
        if os.name == "posix" and found[1] is not None and _running(int(found[1])) and _age(file) <= STALE_TEMPORARY_S:
            continue
        with contextlib.suppress(OSError):  # (on Windows: still open in a running writer)
            file.unlink()


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (POSIX; this process does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # another user's process
        return True
    return True


def _age(file: Path) -> float:
    try:
        return time.time() - file.stat().st_mtime
    except OSError:
        return 0.0


def _mode_for(path: Path) -> int:
    """The permissions of the file being replaced, or those a new file gets under the umask."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode):
        return stat.S_IMODE(info.st_mode)
    return new_file_mode()


def new_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
