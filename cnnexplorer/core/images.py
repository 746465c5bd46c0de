"""Safe image loading: any common format becomes an RGB image, bad files a clear error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image file decoded to RGB, with the SHA-256 of the file for sidecars."""

    path: Path
    image: Image.Image
    sha256: str
    note: str = ""

    @property
    def name(self) -> str:
        return self.path.name
