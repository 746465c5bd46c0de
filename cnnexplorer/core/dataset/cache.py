"""Where dataset indexes are kept on disk, and the key that names one.

The key is the SHA-256 of everything the index depends on: the weights (the bytes of every
state_dict tensor), the model spec, the preprocessing, the probe set's fingerprint, the layers, k, the
feature layers and the batch size. A finished index is ``KEY.npz``, the state of an unfinished pass
``KEY.partial.npz``; both are ``np.savez`` files (arrays plus one JSON string, read back without
pickle) written atomically, so a killed run leaves the last complete file. A file that cannot be
read back (damaged, or not written by this version) raises ``Unreadable``: the index says so, removes it
and indexes again; one that cannot be read for another reason (an I/O error) is a ``UserError``, and stays.

The folder is ``cache_dir`` when given, else ``$CNNEXPLORER_CACHE/index``, else the user's cache
folder (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/cnnexplorer/index``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.outputs import atomic_write

FORMAT = 3  # bump when what a file holds changes: older files then no longer match any key
_META = "meta.json"
_CHUNK = 1 << 20


def cache_folder(cache_dir: Path | str | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("CNNEXPLORER_CACHE"):
        return Path(os.environ["CNNEXPLORER_CACHE"]).expanduser() / "index"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnexplorer" / "index"


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of every state_dict entry's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(f"{name}\t".encode())
        if not isinstance(value, torch.Tensor):  # a quantized layer's packed parameters
            digest.update(repr(value).encode())
            continue
        tensor = (value.dequantize() if value.is_quantized else value).detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}\t{list(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def index_key(**parts) -> str:
    """The key of an index from what it depends on (any JSON-able values)."""
    return hashlib.sha256(json.dumps({"format": FORMAT, **parts}, sort_keys=True).encode()).hexdigest()


def finished_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.npz"


def partial_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.partial.npz"


def write_state(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """``meta`` and ``arrays`` as an ``np.savez`` file at ``path``, streamed a megabyte at a time (numpy's
    own writer copies up to 16 MB per array, and the whole file would be built in memory first)."""
    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in {_META: np.array(json.dumps(meta)), **arrays}.items():
                value = value if value.flags.c_contiguous else value.copy(order="C")  # (keeps 0-d arrays 0-d)
                with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array_header_2_0(entry, np.lib.format.header_data_from_array_1_0(value))
                    data = memoryview(value.reshape(-1).view(np.uint8)) if value.size else memoryview(b"")
                    for start in range(0, len(data), _CHUNK):
                        entry.write(data[start:start + _CHUNK])

    atomic_write(path, write)


class Unreadable(Exception):
    """A cache file that is there but cannot be used; the message says why."""


def read_state(path: Path, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The meta and arrays ``write_state`` wrote for ``key``; None when there is no such file, ``Unreadable``
    when there is one that cannot be read back or is not ``key``'s."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(str(arrays.pop(_META)))
    except (FileNotFoundError, NotADirectoryError):  # no such file (a part of the path may be a file)
        return None
    except OSError as exc:  # the file may be sound: an I/O error, too many open files …
        raise UserError(f"cannot read the index cache {path}: {exc.strerror or exc}; check the disk, or choose "
                        "another cache folder") from None
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise Unreadable("it holds another index")
    return meta, arrays
