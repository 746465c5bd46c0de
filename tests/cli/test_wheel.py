"""The built wheel carries its resources: install it in a fresh venv and predict offline.

The fresh venv gets only the wheel; its heavy dependencies (torch, …) are borrowed from the
test's own environment through a .pth line, so the test needs no network and no 5 GB install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (path,) = out.glob("cnnexplorer-*.whl")
    return path


def test_wheel_contains_resources(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"cnnexplorer/resources/weights/shapes.pt", "cnnexplorer/resources/weights/lenet5.pt",
            "cnnexplorer/resources/data/digits.csv.gz", "cnnexplorer/resources/data/DIGITS-LICENSE.txt"} <= set(names)
    assert any(n.startswith("cnnexplorer/resources/samples/") and n.endswith(".png") for n in names)
    assert any(n.startswith("cnnexplorer/resources/icons/") for n in names)
    assert not any(n.startswith(("tests/", "resources/")) for n in names), "no top-level package but cnnexplorer"


def test_installed_wheel_predicts_with_builtin_model(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    (site / "zz_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.check_output([str(py), "-c", "import cnnexplorer; print(cnnexplorer.__file__)"], cwd=work, env=env, text=True)
    assert where.startswith(str(env_dir))
    sample = site / "cnnexplorer" / "resources" / "samples" / "star.png"
    proc = subprocess.run(
        [str(env_dir / "bin" / "cnnexplorer"), "predict", "--model", "builtin:shapes", str(sample), "--json", "--device", "cpu"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["results"][0]["top"][0]["label"] == "star"
