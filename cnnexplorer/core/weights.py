"""Torchvision weights: the torch hub cache, downloads with progress, and clear offline errors.

``torch.hub.load_state_dict_from_url`` blocks without progress a GUI can show, and fails
offline with a raw socket error. Here a download is a job (yields ``Progress``) that writes
to a temporary file beside the cache entry and renames it only when complete and verified,
so an error or a cancel never leaves a partial file that later looks cached.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.jobs import Job, Progress
from cnnexplorer.core.outputs import new_file_mode

TIMEOUT_S = 10.0


class WeightsUnavailable(UserError):
    """Weights could not be downloaded; ``arch`` lets the GUI offer ``torchvision:ARCH:none``."""

    def __init__(self, url: str, dest: Path, reason: str, arch: str | None = None):
        self.url, self.dest, self.arch = url, dest, arch
        fallback = f"open torchvision:{arch}:none" if arch else "use the weights 'none'"
        super().__init__(
            f"could not download the weights {dest.name} from {url} ({reason}); no network? "
            f"Copy the file to {dest} and try again, or {fallback} for random weights"
        )


def _cache_file(url: str) -> Path:
    """The cache entry torch.hub uses for ``url``: ``<hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PurePosixPath(urlparse(url).path).name


def cache_path(weights) -> Path:
    """Where torch.hub caches a torchvision weights enum member (anything with ``.url``)."""
    return _cache_file(weights.url)


def is_cached(weights) -> bool:
    return cache_path(weights).is_file()


def hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix in a torchvision file name (``resnet50-11ad3fa6.pth``), as torch.hub reads it."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match and match.group(1) else None


def _arch_of(weights) -> str | None:
    """The torchvision architecture whose weights enum ``weights`` belongs to."""
    archs = torchvision.models.list_models(module=torchvision.models)
    return next((a for a in archs if torchvision.models.get_model_weights(a) is type(weights)), None)


def download(
    url: str,
    dest: Path,
    expected_sha256_prefix: str | None = None,
    chunk: int = 1 << 20,
    *,
    arch: str | None = None,
) -> Job[Path]:
    """Stream ``url`` to ``dest`` (a job yielding byte counts); return ``dest``.

    Writes to a temporary file in ``dest``'s folder and renames it at the end, so ``dest``
    appears whole or not at all. ``arch`` only names the random-weights fallback in errors.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    message = f"downloading {dest.name}"
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length is not None else None
                    done = 0
                    yield Progress(done, total, message)
                    while block := response.read(chunk):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        yield Progress(done, total, message)
            except (OSError, http.client.HTTPException) as exc:
                raise WeightsUnavailable(url, dest, str(exc) or type(exc).__name__, arch) from exc
        if total is not None and done != total:
            raise WeightsUnavailable(url, dest, f"connection closed after {done:,} of {total:,} bytes", arch)
        actual = digest.hexdigest()
        if expected_sha256_prefix and not actual.startswith(expected_sha256_prefix):
            raise UserError(
                f"the download of {dest.name} is damaged (SHA-256 starts with "
                f"{actual[:len(expected_sha256_prefix)]}, expected {expected_sha256_prefix}); "
                f"try again, or copy a good copy of the file to {dest}"
            )
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch_weights(weights, url: str | None = None) -> Job[Path]:
    """The cache file of a torchvision weights enum member, downloaded first if it is missing.

    ``url`` fetches from elsewhere (a mirror, a local test server); as in torch.hub, the
    cache entry and the expected hash come from that URL's file name.
    """
    source = url or weights.url
    path = _cache_file(source)
    if not path.is_file():
        yield from download(source, path, hash_prefix(path.name), arch=_arch_of(weights))
    return path


def pretrained_torchvision(arch: str, weights, url: str | None = None) -> Job[nn.Module]:
    """``torchvision.models.get_model(arch, weights=weights)`` itself, so every flag its builder sets for
    those weights is set; the file is put in torch.hub's cache here first (with progress, a mirror and a
    clear offline error), where torchvision then finds it (torch.hub checks hashes only on download)."""
    path = yield from fetch_weights(weights, url)
    yield Progress(0, None, f"loading {path.name}")
    try:
        return torchvision.models.get_model(arch, weights=weights)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"the cached weights file {path} is damaged ({first_line}); delete it and try again") from exc
