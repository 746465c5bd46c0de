"""Writing pictures: PNG files (written atomically) with a sidecar JSON that reproduces them.

The GUI's Export and the CLI's ``export`` both end here, with pixels made by the same core
render functions, so both give identical files for identical inputs.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import cnnexplorer


def versions() -> dict:
    """Package versions that affect the pixels, for sidecars."""
    import PIL
    import torch
    import torchvision

    return {
        "cnnexplorer": cnnexplorer.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }


def make_sidecar(view: str, model=None, image=None, layer: str | None = None,
                 settings: dict | None = None, seed: int | None = None) -> dict:
    """The sidecar for a picture: what was shown, of which model, image and layer, and how.

    ``model`` is a ModelHandle and ``image`` a LoadedImage (either may be None).
    """
    return {
        "view": view,
        "model": model.describe() if model is not None else None,
        "image": {"path": str(image.path), "sha256": image.sha256} if image is not None else None,
        "layer": layer,
        "settings": settings or {},
        "seed": seed,
        "versions": versions(),
    }


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``H×W×3`` (or ``H×W``) uint8 array as PNG."""
    import io

    if rgb.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {rgb.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | Path, rgb: np.ndarray, sidecar: dict) -> tuple[Path, Path]:
    """Write the picture and ``PATH.json`` beside it, both atomically; return both paths."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    sidecar_path = path.with_name(path.name + ".json")
    atomic_write_bytes(path, png_bytes(rgb))
    atomic_write_bytes(sidecar_path, (json.dumps(sidecar, indent=2) + "\n").encode())
    return path, sidecar_path
