"""Writing the user's files: atomic, links replaced not followed, permissions kept, one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.outputs import atomic_write_bytes, check_output, check_outputs


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"a")
        os.umask(0o027)
        atomic_write_bytes(tmp_path / "b.bin", b"b")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.bin") == 0o644
    assert mode(tmp_path / "b.bin") == 0o640


def test_overwriting_keeps_the_files_permissions(tmp_path, umask_022):
    path = tmp_path / "shared.png"
    path.write_bytes(b"old")
    for kept in (0o644, 0o664, 0o600):
        path.chmod(kept)
        atomic_write_bytes(path, b"new")
        assert mode(path) == kept and path.read_bytes() == b"new"


def test_a_link_is_replaced_never_followed(tmp_path, umask_022):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep me")
    link = tmp_path / "out.npy"
    link.symlink_to(precious)
    atomic_write_bytes(link, b"map")
    assert precious.read_bytes() == b"keep me"
    assert not link.is_symlink() and link.read_bytes() == b"map" and mode(link) == 0o644


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "c.pt"
    stale = [tmp_path / ".c.pt.abc12_XY.tmp", tmp_path / ".c.pt.zzzzzzzz.tmp"]
    others = [tmp_path / ".d.pt.abc12_XY.tmp", tmp_path / ".c.pt.notmine.tmp", tmp_path / "c.pt.abc12_XY.tmp"]
    for file in stale + others:
        file.write_bytes(b"half")
    atomic_write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole"
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in others), "only this path's own temporaries are removed"


def test_a_temporary_of_another_process_still_writing_stays(tmp_path):
    """Two processes writing one path at once (two indexes of one set): neither removes the other's temporary."""
    path = tmp_path / "c.npz"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    writing = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".c.npz.{writing.pid}.abcd1234.tmp"
        dead = tmp_path / f".c.npz.{ended.pid}.abcd1234.tmp"
        old = tmp_path / f".c.npz.{writing.pid}.old12345.tmp"
        odd = tmp_path / f".c.npz.{'9' * 30}.abcd1234.tmp"  # no process has such a number
        for file in (live, dead, old, odd):
            file.write_bytes(b"half")
        os.utime(old, (time.time() - 2 * 3600,) * 2)  # hours old: a killed writer's, whatever its number
        atomic_write_bytes(path, b"whole")
        assert live.exists() and not dead.exists() and not old.exists() and not odd.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.npz", live.name])
    finally:
        writing.kill()
        writing.wait()


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    """A real failure: the file-size limit makes the write fail as a full disk does."""
    target = tmp_path / "out.png"
    target.write_bytes(b"previous picture")
    script = (
        "import resource, signal, sys\n"
        "from cnnexplorer.core.errors import UserError\n"
        "from cnnexplorer.core.outputs import atomic_write_bytes\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        f"    atomic_write_bytes({str(target)!r}, bytes(100_000))\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    assert message.startswith(f"cannot write {target}: File too large;") and "\n" not in message
    assert target.read_bytes() == b"previous picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def under_a_file(folder):
    (folder / "file.txt").write_text("x")
    return folder / "file.txt"


@pytest.mark.parametrize("make, expected", [
    (lambda d: "", "is empty"),
    (lambda d: "   ", "is empty"),
    (lambda d: d, "is a folder"),
    (lambda d: under_a_file(d) / "out.png", "which is a file, not a folder"),
    (lambda d: under_a_file(d) / "deeper" / "out.png", "which is a file, not a folder"),
    (lambda d: d / ("n" * 300 + ".png"), "too long for the file system"),
])
def test_unwritable_outputs_are_named_before_any_work(tmp_path, make, expected):
    with pytest.raises(UserError, match=expected):
        check_output("--out", make(tmp_path))


def test_missing_folders_are_fine_when_their_parent_is_writable(tmp_path):
    check_output("--out", tmp_path / "new" / "deeper" / "out.png")
    atomic_write_bytes(tmp_path / "new" / "deeper" / "out.png", b"x")
    assert (tmp_path / "new" / "deeper" / "out.png").read_bytes() == b"x"


def test_outputs_may_not_be_an_input_or_each_other(tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(b"image")
    link = tmp_path / "link.png"
    link.symlink_to(image)
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="same file as the input --image"):
        check_outputs({"--out": tmp_path / "sub" / ".." / "in.png"}, {"--image": image})
    with pytest.raises(UserError, match="same file as the input --image"):
        check_outputs({"--out": image}, {"--image": link})  # the input read through a link
    with pytest.raises(UserError, match="--csv and --out are the same file"):
        check_outputs({"--out": tmp_path / "c.pt", "--csv": tmp_path / "sub" / ".." / "c.pt"})
    # a link to the input, as an output, is replaced itself: the input is safe, so it is allowed
    check_outputs({"--out": link}, {"--image": image})
    check_outputs({"--out": tmp_path / "a.png", "--plot": tmp_path / "b.png"}, {"--image": image, "--model": None})
