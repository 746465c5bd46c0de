"""Outputs never destroy the user's files: collisions, links, unwritable places and full disks
are one line with exit code 2, found before the work, and every file is left byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cnnexplorer.resource_files import resource_path
from tests.cli.cli_helpers import assert_one_line_error, run_cli

SHAPES = ("--model", "builtin:shapes")


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "in.png"
    shutil.copy(resource_path("samples", "circle.png"), path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (links as the text of the link), to compare byte for byte."""
    return {str(p.relative_to(folder)): (b"->" + os.readlink(p).encode()) if p.is_symlink() else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_symlink() or p.is_file()}


@pytest.mark.parametrize("argv, words", [
    (["export", "heatmap", *SHAPES, "--image", "in.png", "--out", "in.png"], ["--out", "input --image"]),
    (["export", "heatmap", *SHAPES, "--image", "in.png", "--out", "sub/../in"], ["--out", "input --image"]),
    (["export", "heatmap", *SHAPES, "--image", "in.png", "--out", "h.png", "--save-map", "in.png"], ["--save-map"]),
    (["export", "heatmap", *SHAPES, "--image", "in.png", "--out", "h.png", "--save-map", "h.png.json"],
     ["--save-map", ".npy"]),
    (["export", "heatmap", *SHAPES, "--image", "in.png", "--out", "h.npy", "--save-map", "h.npy.png"],
     ["--save-map", ".npy"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--out", "a.png", "--save-adversarial", "a.png"],
     ["--save-adversarial", "--out"]),
    (["export", "adversarial", *SHAPES, "--image", "in.png", "--out", "a.png", "--save-adversarial", "in.png"],
     ["--save-adversarial", "input --image"]),
    (["export", "adversarial", *SHAPES, "--image", "link.png", "--out", "a.png", "--save-adversarial", "in.png"],
     ["--save-adversarial", "input --image"]),
    (["train", *SHAPES, "--data", "builtin:shapes", "--out", "c.pt", "--plot", "c.pt"], ["--plot", "--out"]),
    (["train", *SHAPES, "--data", "builtin:shapes", "--out", "c.pt", "--csv", "c.pt"], ["--csv", "--out"]),
    (["train", *SHAPES, "--data", "builtin:shapes", "--out", "c.pt", "--csv", "c.best.pt"], ["--csv", "best"]),
    (["train", *SHAPES, "--data", "builtin:shapes", "--out", "c.pt", "--csv", "g.csv", "--gradient-csv", "g.csv"],
     ["--gradient-csv", "--csv"]),
    (["train", "--model", "c.pt", "--data", "builtin:shapes", "--out", "c.pt"], ["--out", "input --model"]),
    (["predict", "--model", "c.pt", "in.png"], None),  # reads only: nothing to refuse, fails on the fake model
])
def test_no_output_replaces_an_input_or_another_output(tmp_path, image, capsys, monkeypatch, argv, words):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(image)
    for name in ("c.pt", "c.best.pt", "h.png.json", "a.png"):
        (tmp_path / name).write_bytes(b"the user's " + name.encode())
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    if words is None:
        assert code == 2 and "c.pt" in err
    else:
        assert_one_line_error(code, err, *words)
    assert snapshot(tmp_path) == before


def test_a_save_map_link_is_replaced_not_written_through(tmp_path, image, capsys):
    victim = tmp_path / "victim.npy"
    victim.write_bytes(b"someone else's data")
    link = tmp_path / "map.npy"
    link.symlink_to(victim)
    code, _, err = run_cli(capsys, "export", "heatmap", *SHAPES, "--image", image, "--out", tmp_path / "h.png",
                           "--save-map", link)
    assert code == 0, err
    assert victim.read_bytes() == b"someone else's data"
    import numpy as np

    assert not link.is_symlink() and np.load(link).shape == (64, 64)


@pytest.mark.parametrize("out, words", [
    ("", ["--out is empty"]),
    ("folder", ["is a folder"]),
    ("folder.png", ["is a folder"]),
    ("afile/x.png", ["which is a file, not a folder"]),
    ("afile/deeper/x.png", ["which is a file, not a folder"]),
    ("n" * 260 + ".png", ["too long"]),
])
@pytest.mark.parametrize("command", ["export", "train"])
def test_unwritable_outputs_are_one_line_before_any_work(tmp_path, image, capsys, monkeypatch, out, words, command):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "afile").write_text("a file")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = (["export", "heatmap", *SHAPES, "--image", image, "--out", out] if command == "export" else
            ["train", *SHAPES, "--data", "builtin:shapes", "--epochs", "1", "--out", out])
    code, stdout, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *words)
    assert "epoch" not in err and not stdout  # found before the work, not after an epoch
    assert snapshot(tmp_path) == before


def _without_root_override() -> None:
    """In the child: drop the capabilities that let root write anywhere, so modes count as for a user.

    They are dropped from the bounding set, which survives ``exec`` (a plain drop would not).
    """
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop root's file-permission override")


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def run_cnnexplorer(*argv, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    code = "import sys; from cnnexplorer.cli import main; sys.exit(main(sys.argv[1:]))"
    environment = {**os.environ, "HOME": str(cwd), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_a_read_only_folder_is_one_line_before_any_work(tmp_path, image):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for argv in (("export", "heatmap", *SHAPES, "--image", "in.png", "--out", "locked/h.png"),
                     ("train", *SHAPES, "--data", "builtin:shapes", "--out", "locked/c.pt"),
                     ("export", "heatmap", *SHAPES, "--image", "in.png", "--out", "h.png",
                      "--save-map", "locked/deeper/m.npy")):
            done = run_cnnexplorer(*argv, cwd=tmp_path, preexec_fn=_without_root_override)
            assert_one_line_error(done.returncode, done.stderr, "not writable", str(locked))
            assert list(locked.iterdir()) == [] and not (tmp_path / "h.png").exists()
    finally:
        locked.chmod(0o755)


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, image):
    """The file-size limit makes writes fail the way a full disk does (EFBIG for ENOSPC)."""
    (tmp_path / "h.png").write_bytes(b"the previous picture")
    (tmp_path / "h.png").chmod(0o640)
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    done = run_cnnexplorer("export", "heatmap", *SHAPES, "--image", image, "--out", "h.png", cwd=tmp_path,
                           preexec_fn=limit)
    assert_one_line_error(done.returncode, done.stderr, "cannot write", "h.png", "File too large")
    assert (tmp_path / "h.png").read_bytes() == b"the previous picture"
    assert stat.S_IMODE((tmp_path / "h.png").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png", "in.png"], "no temporary left behind"


def test_outputs_keep_the_users_permissions_and_stale_temporaries_go(tmp_path, image, capsys):
    old_mask = os.umask(0o022)
    try:
        (tmp_path / "old.png").write_bytes(b"x")
        (tmp_path / "old.png").chmod(0o644)
        stale = tmp_path / ".old.png.k1ll3d_x.tmp"
        stale.write_bytes(b"left by kill -9")
        for out in ("old.png", "new.png"):
            code, _, err = run_cli(capsys, "export", "heatmap", *SHAPES, "--image", image, "--out", tmp_path / out)
            assert code == 0, err
    finally:
        os.umask(old_mask)
    for name in ("old.png", "new.png", "new.png.json", "old.png.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert not stale.exists()
