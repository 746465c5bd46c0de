"""An image of a generated or packaged data set opened as any image file is: ``SPEC#N``, image ``N``
(from 0) of the set ``SPEC`` names (``builtin:shapes#12``, ``cifar10:~/data#3``), as the dataset views
and their ``--json`` reports number them.

Such an image is no file of its own, so its reference stands where a file's path would: in the
views, in a picture's sidecar (so ``export --from-sidecar`` opens it again) and on the command line
(``--image builtin:shapes#12``). A folder's images are files and open by their paths.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.images import LoadedImage, from_pixels, load_image
from cnnexplorer.core.training.data import _TORCHVISION

_MEMBER = re.compile(rf"^((?:builtin|{'|'.join(map(re.escape, _TORCHVISION))}):.*)#(\d+)$")


def parse_member(text: str) -> tuple[str, int] | None:
    """``(spec, n)`` for a reference ``SPEC#N`` to a generated or packaged set's image, else None."""
    found = _MEMBER.match(str(text).strip())
    return None if found is None else (found[1], int(found[2]))


def member_image(probe, number: int) -> LoadedImage:
    """Image ``number`` of the probe set ``probe`` as the views open an image: a folder's file by its path,
    any other set's image by its reference."""
    if not 0 <= number < len(probe):
        raise UserError(f"{probe.spec} holds {len(probe):,} images, numbered 0 to {len(probe) - 1:,}; there is "
                        f"no image {number}")
    if probe.sources is not None:
        return load_image(probe.sources[number])
    return from_pixels(probe.source(number), probe.image(number))


def load_member(reference: str) -> LoadedImage:
    """The image ``SPEC#N`` names; ``UserError`` when the set cannot be opened or holds no image ``N``."""
    spec, number = parse_member(reference)
    return member_image(_opened(spec), number)


@lru_cache(maxsize=2)
def _opened(spec: str):
    """The set, opened once for the images taken from it in turn (a generated set takes seconds to make)."""
    from cnnexplorer.core.dataset.probe import open_probe_set

    return open_probe_set(spec)


def number_in(probe, image: LoadedImage) -> int | None:
    """Which of ``probe``'s images ``image`` is when it was opened from the set (by its reference, or as the
    same file), else None."""
    if image.reference:
        parsed = parse_member(image.reference)
        return parsed[1] if parsed and parsed[0] == probe.spec and parsed[1] < len(probe) else None
    if probe.sources is None:
        return None
    name = image.path.name
    for number, source in enumerate(probe.sources):
        if source.endswith(name) and _same_file(source, image.path):
            return number
    return None


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
