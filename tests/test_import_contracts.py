"""The layer contracts in pyproject.toml hold: CLI over GUI over pictures over core, no Qt below
the GUI, widgets never import views, only the command line parses flags."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is part of the dev extra: pip install -e '.[dev]'"
    done = subprocess.run([lint, "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def test_every_command_module_is_in_the_top_layer():
    """A new ``cli_NAME.py`` (found by cli.py on its own) must join the top layer, or nothing checks its imports."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    top = {name.strip() for name in layers[0].split(":")}
    modules = {f"cnnexplorer.{path.stem}" for path in (ROOT / "cnnexplorer").glob("cli*.py")}
    assert modules <= top, sorted(modules - top)
