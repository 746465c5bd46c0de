"""Paths to the files the app ships: weights, sample images, icons.

They live in the top-level ``resources/`` folder of the source tree, which the wheel installs as
``cnnexplorer/resources/`` (see setup.py); a path is found in whichever of the two is there.
"""

from pathlib import Path

_INSTALLED = Path(__file__).with_name("resources")
_SOURCE = Path(__file__).resolve().parents[1] / "resources"


def resource_path(*parts: str) -> Path:
    """Path of a shipped file, e.g. ``resource_path("weights", "shapes.pt")``."""
    return (_INSTALLED if _INSTALLED.is_dir() else _SOURCE).joinpath(*parts)
