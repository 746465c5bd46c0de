"""Paths to the files shipped inside the package (weights, sample images, icons)."""

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a packaged resource, e.g. ``resource_path("weights", "shapes.pt")``."""
    return Path(str(files("cnnexplorer").joinpath("resources", *parts)))
