"""Safe image loading: any common format becomes an RGB image, bad files a clear error.

Odd but valid files (grey, alpha, palette, 16-bit, CMYK, EXIF-rotated) are converted, with a
``note`` saying what was done; broken, truncated or oversized files raise ``UserError``. The
size limit is checked on the header, before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.input_files import require_regular_file

MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
)
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
SAMPLE_PREFIX = "sample:"
_FIX = "open a PNG, JPEG, BMP, GIF, TIFF or WebP image"
_ROTATIONS = {3, 6, 8}  # EXIF orientations that are pure rotations; the others also mirror


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image file decoded to RGB, with the SHA-256 of the file for sidecars. Its ``reference`` opens it again
    wherever the app is installed: ``sample:NAME`` for a sample shipped with the app, ``SPEC#N`` for an image
    of a data set that is no file of its own (``core.dataset.members``); empty for the user's own files."""

    path: Path
    image: Image.Image
    sha256: str
    note: str = ""
    reference: str = ""

    @property
    def name(self) -> str:
        return self.reference or self.path.name

    @property
    def source(self) -> str:
        """What opens the image again: its reference, else the file's absolute path."""
        return self.reference or str(self.path.absolute())

    @property
    def stem(self) -> str:
        """A name for files made from the image: the file's name without its suffix, or the reference with
        what a file name cannot hold replaced by '-'."""
        return re.sub(r"[^\w.-]+", "-", self.reference).strip("-") if self.reference else self.path.stem

    def beside(self, ending: str) -> Path:
        """Where to offer a file made from the image: its stem plus ``ending``, beside its file (in the working
        folder for a sample or a data set's image)."""
        return (Path.cwd() if self.reference else self.path.parent) / f"{self.stem}{ending}"


def classify_path(path: str | Path) -> str:
    """``"image"``, ``"model"``, ``"folder"`` (a dataset) or ``"unknown"`` by file suffix, for drag-and-drop and
    the app's command line (where ``SPEC#N``, an image of a data set, is an image too)."""
    if Path(path).is_dir():
        return "folder"
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in MODEL_SUFFIXES:
        return "model"
    from cnnexplorer.core.dataset.members import parse_member

    return "image" if parse_member(str(path)) is not None else "unknown"


def image_path(text: str | Path) -> Path:
    """The file an image argument names: a path, or ``sample:NAME`` for an image shipped with the app."""
    text = str(text)
    if not text.startswith(SAMPLE_PREFIX):
        return Path(text)
    from cnnexplorer.resource_files import resource_path

    name = text[len(SAMPLE_PREFIX):]
    samples = sorted(p.stem for p in resource_path("samples").glob("*.png"))
    if name not in samples:
        raise UserError(f"there is no sample image '{name}'; the samples are "
                        + ", ".join(f"{SAMPLE_PREFIX}{s}" for s in samples))
    return resource_path("samples", f"{name}.png")


def load_image(path: str | Path) -> LoadedImage:
    """Decode ``path`` (or ``sample:NAME``, or ``SPEC#N`` for an image of a data set) to an RGB image; raise
    ``UserError`` naming the file, problem and fix."""
    if "#" in str(path) and not Path(path).exists():
        from cnnexplorer.core.dataset.members import load_member, parse_member

        if parse_member(str(path)) is not None:
            return load_member(str(path))
    path = image_path(path)
    require_regular_file(path, "image file", _FIX)
    try:
        with path.open("rb") as stream:
            image = _open_header(path, stream)
            _check_size(path, image.size)
            try:
                image.load()
                orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
                frames = getattr(image, "n_frames", 1)
                image = ImageOps.exif_transpose(image)
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise UserError(
                    f"{path} is truncated or corrupt ({exc}); re-save or re-download the image"
                ) from None
            stream.seek(0)
            digest = _sha256(stream)
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied; check the file's permissions") from None
    rgb, notes = _to_rgb(path, image)
    if orientation in _ROTATIONS:
        notes.append(f"rotated by EXIF (orientation {orientation})")
    elif orientation in (2, 4, 5, 7):
        notes.append(f"mirrored by EXIF (orientation {orientation})")
    if frames > 1:
        notes.append(f"first of {frames} frames")
    return LoadedImage(path=path, image=rgb, sha256=digest, note="; ".join(notes), reference=_sample_reference(path))


def _sample_reference(path: Path) -> str:
    """``sample:NAME`` for a sample shipped with the app (however it was named), else ''."""
    from cnnexplorer.resource_files import resource_path

    samples = resource_path("samples")
    return f"{SAMPLE_PREFIX}{path.stem}" if path.suffix == ".png" and path.resolve().parent == samples.resolve() else ""


def from_pixels(reference: str, image: Image.Image) -> LoadedImage:
    """An image that is no file of its own, known by ``reference``, converted as a file's pixels are; its
    SHA-256 is of its mode, size and pixels."""
    digest = hashlib.sha256(f"{image.mode} {image.size}\n".encode() + image.tobytes()).hexdigest()
    rgb, notes = _to_rgb(Path(reference), image)
    return LoadedImage(Path(reference), rgb, digest, "; ".join(notes), reference)


def _open_header(path: Path, stream) -> Image.Image:
    """Read the header only; PIL's decompression-bomb check becomes our own message.

    The warning PIL gives between its soft limit and ours is silenced: ``_check_size`` decides.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except Image.DecompressionBombError:
        raise UserError(_too_big(path, "far")) from None
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image file (or one Pillow cannot read); {_FIX}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UserError(f"{path} is a corrupt image ({exc}); re-save or re-download it") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise UserError(_too_big(path, f"{width}×{height} ({width * height / 1e6:.0f} megapixels),"))


def _too_big(path: Path, size: str) -> str:
    return (
        f"{path} is {size} over the {MAX_PIXELS // 1_000_000}-megapixel limit; "
        "downscale it (e.g. to 4000 pixels on the long side) and open it again"
    )


def _sha256(stream) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _to_rgb(path: Path, image: Image.Image) -> tuple[Image.Image, list[str]]:
    """A new RGB image (never sharing the file), and notes on what was converted."""
    mode = image.mode
    if mode == "RGB":
        return image.copy(), []
    if mode.startswith("I") or mode == "F":
        array, how = _scale_to_uint8(image)
        return Image.fromarray(array).convert("RGB"), [f"converted from {mode} ({how})"]
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), [f"converted from {mode} (composited over white)"]
    try:
        rgb = image.convert("RGB")
    except ValueError:
        raise UserError(f"{path} has colour mode {mode}, which cannot be converted to RGB; save it as RGB") from None
    names = {"L": "grayscale", "1": "1-bit", "P": "palette"}
    return rgb, [f"converted from {names.get(mode, mode)}"]


def _scale_to_uint8(image: Image.Image) -> tuple[np.ndarray, str]:
    """8-bit grey from 16/32-bit integer or float pixels, scaled by the type's real range.

    16-bit data (also when stored in a 32-bit ``I`` image) maps 0–65535 to 0–255, floats in
    [0, 1] map to 0–255; only values outside those ranges are stretched by their own min–max.
    """
    array = np.asarray(image).astype(np.float64)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        low, high, how = 0.0, 1.0, "0–1 scaled to 0–255"
    elif image.mode != "F" and low >= 0 and high <= 65535:
        low, high, how = 0.0, 65535.0, "16-bit scaled to 8-bit"
    else:
        how = f"values {low:g}–{high:g} stretched to 0–255"
    scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8), how
