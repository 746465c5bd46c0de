"""The pictures the app makes, one module each, shared by the GUI's views and ``cnnexplorer export``.

Each module holds one ``Recipe`` (``base.py``): its options dataclass (the sidecar's settings), the
core job that makes the picture, and its CLI flags; ``registry.RECIPES`` names them by export name.
Importing this package loads nothing heavy, so the CLI can parse its flags before torch loads.
"""
