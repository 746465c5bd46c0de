"""Reading a picture's sidecar back: what makes the picture again (``export --from-sidecar``).

A picture of an edited model (``--ablate``, the GUI's interventions) records the edits in the
sidecar's ``interventions`` list (``Edit.to_json``, mean values included), so the same edits are
applied when it is made again; sidecars without the key are of the unedited model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.input_files import require_regular_file
from cnnexplorer.core.interventions import Edit

MAX_SIDECAR_BYTES = 16_000_000


@dataclass(frozen=True)
class Recorded:
    """A sidecar's view, model (its spec, and for a model file the preprocessing as --input-size,
    --mean, --std), image (path and SHA-256), layer, settings and seed."""

    view: str
    model_spec: str
    file_options: tuple | None
    image_path: Path | None
    image_sha256: str | None
    layer: str | None
    settings: dict
    seed: int
    interventions: tuple[Edit, ...] = ()


def read_sidecar(path: str | Path, views) -> Recorded:
    """The sidecar at ``path``; ``views`` are the picture names it may name. ``UserError`` if damaged."""
    path = Path(path)
    require_regular_file(path, "sidecar", "pass the NAME.png.json written beside an exported picture",
                         max_bytes=MAX_SIDECAR_BYTES)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        view, model, image = data["view"], data["model"], data.get("image")
        if view not in views:
            raise UserError(f"{path} describes a '{view}' picture, which this version cannot make; "
                            f"it makes {', '.join(sorted(views))}")
        spec = str(model["spec"])
        image_path = None if image is None else _image_path(path, str(image["path"]))
        return Recorded(view, spec, _file_options(spec, model.get("preprocessing")), image_path,
                        None if image is None else str(image["sha256"]), data.get("layer"),
                        dict(data.get("settings") or {}), int(data.get("seed") or 0),
                        tuple(Edit.from_json(e) for e in data.get("interventions") or ()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is not a cnnexplorer sidecar ({type(exc).__name__}: {exc}); pass the "
                        "NAME.png.json written beside an exported picture") from None


def _image_path(sidecar: Path, recorded: str) -> Path:
    """The recorded image, or, when that path no longer leads to it (the two moved together), the file of that
    relative path or that name beside the sidecar; its SHA-256 is checked either way."""
    image = Path(recorded)
    if image.exists():
        return image
    beside = [sidecar.parent / image] if not image.is_absolute() else []
    return next((path for path in (*beside, sidecar.parent / image.name) if path.exists()), image)


def _file_options(spec: str, preprocessing: dict | None) -> tuple | None:
    """For a model file: its recorded input size, mean and std, as the CLI flags would give them."""
    if spec.startswith(("builtin:", "torchvision:", "timm:")) or not preprocessing:
        return None
    return (tuple(int(v) for v in preprocessing["input_size"]), tuple(float(v) for v in preprocessing["mean"]),
            tuple(float(v) for v in preprocessing["std"]))
