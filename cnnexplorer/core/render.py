"""Writing pictures: PNG files (written atomically) with a sidecar JSON that reproduces them.

The GUI's Export and the CLI's ``export`` both end here, with pixels made by the same core
render functions, so both give identical files for identical inputs.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
from PIL import Image

import cnnexplorer
from cnnexplorer.core.outputs import atomic_write_bytes


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

    ``model`` is a ModelHandle and ``image`` a LoadedImage (either may be None); the image's path is recorded
    absolute, so the picture can be made again from any folder.
    """
    return {
        "view": view,
        "model": model.describe() if model is not None else None,
        "image": {"path": image.source, "sha256": image.sha256} if image is not None else None,
        "layer": layer,
        "settings": settings or {},
        "seed": seed,
        "versions": versions(),
    }


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``H×W×3`` (or ``H×W``) uint8 array as PNG."""
    import io

    if rgb.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {rgb.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in NumPy's ``.npy`` format (what ``np.save`` writes)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def png_paths(path: str | Path) -> tuple[Path, Path]:
    """Where ``write_png`` puts a picture asked for at ``path``, and its sidecar."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    return path, path.with_name(path.name + ".json")


def write_png(path: str | Path, rgb: np.ndarray, sidecar: dict) -> tuple[Path, Path]:
    """Write the picture and ``PATH.json`` beside it, both atomically; return both paths."""
    path, sidecar_path = png_paths(path)
    atomic_write_bytes(path, png_bytes(rgb))
    atomic_write_bytes(sidecar_path, (json.dumps(sidecar, indent=2) + "\n").encode())
    return path, sidecar_path
