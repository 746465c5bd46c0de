"""What every picture module shares: the picture it makes, the recipe that makes it, and the
options dataclass its GUI view, its CLI flags and its sidecar all read and write.

A picture module (``pictures/activations.py`` …) defines one ``Recipe``: its ``Options`` (a frozen
dataclass whose fields are exactly the sidecar's ``settings``), the job that makes the picture from
(model handle, image, layer, options, seed) as a core generator, and how its CLI flags map onto the
options. The GUI view builds the same options from its widgets and runs the same job, so a sidecar
written by either front end reproduces the picture on the other (``export --from-sidecar``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from cnnexplorer.core.errors import UserError

if TYPE_CHECKING:
    import argparse

    import numpy as np

    from cnnexplorer.core.images import LoadedImage
    from cnnexplorer.core.jobs import Job
    from cnnexplorer.core.model_handle import ModelHandle


@dataclass(frozen=True)
class Picture:
    """A made picture: ``H×W×3`` uint8 pixels, the settings that reproduce it, the ``--json`` report."""

    pixels: np.ndarray
    settings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    layer: str | None = None
    side: dict[str, bytes] = field(default_factory=dict)  # other files it can write, by report key


@dataclass(frozen=True)
class Inputs:
    """What a picture is made of, besides its options."""

    handle: ModelHandle
    image: LoadedImage | None = None
    layer: str | None = None
    seed: int = 0

    def need_image(self, name: str) -> LoadedImage:
        if self.image is None:
            raise UserError(f"export {name} needs an image: pass --image IMG (in the app: open one)")
        return self.image

    def need_layer(self, name: str) -> str:
        if not self.layer:
            raise UserError(f"export {name} needs a layer: pass --layer NAME (`cnnexplorer summary` lists them; "
                            "in the app: pick one in the tree)")
        return self.layer


@dataclass(frozen=True)
class Recipe:
    """One picture: its name (the CLI export name and the GUI view's), options, job and flags.

    ``make(inputs, options)`` is the job (a generator yielding progress, returning a ``Picture``);
    ``add_flags(parser)`` adds the CLI flags and ``from_flags(args)`` turns them into options.
    ``side_flags`` maps a key of ``Picture.side`` to the flag (its ``dest``) that asks for that file.
    """

    name: str
    options: type
    make: Callable[[Inputs, Any], Job[Picture]]
    add_flags: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    from_flags: Callable[[argparse.Namespace], Any] | None = None
    side_flags: dict[str, str] = field(default_factory=dict)

    def options_from_flags(self, args: argparse.Namespace):
        if self.from_flags is not None:
            return self.from_flags(args)
        return self.options(**{f.name: getattr(args, f.name) for f in fields(self.options)
                               if getattr(args, f.name, None) is not None})

    def options_from_settings(self, settings: dict):
        """The options a sidecar's ``settings`` hold (keys the options do not know are ignored)."""
        known = {f.name for f in fields(self.options)}
        try:
            return self.options(**{k: _as_field(v) for k, v in settings.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise UserError(f"the sidecar's {self.name} settings are damaged ({exc}); export the picture again") from None


def _as_field(value):
    """JSON lists back to the tuples option fields hold."""
    return tuple(value) if isinstance(value, list) else value


def settings_of(options) -> dict:
    """An options dataclass as the sidecar's ``settings`` (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()}


def save_picture(path, name: str, picture: Picture, handle: ModelHandle | None, image: LoadedImage | None = None,
                 seed: int | None = None, edits: tuple = ()):
    """Write ``picture`` as PNG with the sidecar that reproduces it; return both paths.

    ``edits`` are the interventions (``core.interventions.Edit``) the picture was made under: the sidecar
    records them, so the edited model's picture is made again. The GUI's Export and ``cnnexplorer
    export`` both end here, so both write the same files.
    """
    from cnnexplorer.core.render import make_sidecar, write_png

    sidecar = make_sidecar(name, model=handle, image=image, layer=picture.layer, settings=picture.settings, seed=seed)
    if edits:
        sidecar["interventions"] = [edit.to_json() for edit in edits]
    return write_png(path, picture.pixels, sidecar)
