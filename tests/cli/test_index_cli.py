"""`cnnexplorer index`: the JSON contract, reuse of the cache, skipped files on stderr, one-line errors, and a
pass stopped by Ctrl-C or SIGTERM that the next run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnexplorer.core.dataset.cache import read_state
from tests.cli.cli_helpers import assert_one_line_error, forked_ranks, last_json, run_cli
from tests.core.test_probe_sets import labelled_folder


def test_index_json_contract_and_reuse(capsys, tmp_path):
    data = labelled_folder(tmp_path / "set", per_class=3)
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    cache = tmp_path / "cache"
    argv = ["index", "--model", "builtin:shapes", "--data", data, "--layers", "features.0.0,classifier",
            "--top-k", "4", "--batch-size", "4", "--cache", cache, "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    report = last_json(out)
    assert set(report) == {"count", "layers", "cache", "seconds", "skipped", "reused"}
    assert report["count"] == 6 and report["layers"] == {"features.0.0": 24, "classifier": 6}
    assert report["reused"] is False and report["seconds"] > 0
    assert list(report["skipped"]) == [str(data / "cat" / "broken.png")] and "broken.png" in err
    stored = Path(report["cache"])
    assert stored.parent == cache and stored.suffix == ".npz"
    meta, arrays = read_state(stored, stored.stem)
    assert meta["done"] == 6 and arrays["layer0.top_images"].shape == (24, 4)
    assert (np.sort(arrays["layer1.top_images"], axis=1) >= 0).all()
    code, out, err = run_cli(capsys, *argv)
    again = last_json(out)
    assert code == 0 and again["reused"] is True and again["cache"] == report["cache"] and "reusing" in err
    os.chdir(tmp_path)  # (pytest restores the working folder) the same set written another way, layers reversed:
    same = ["index", "--model", "builtin:shapes", "--data", "folder:./set/../set", "--layers", "classifier,features.0.0",
            "--top-k", "4", "--batch-size", "4", "--cache", cache, "--json"]
    code, out, err = run_cli(capsys, *same)
    assert code == 0 and last_json(out)["reused"] is True and last_json(out)["cache"] == report["cache"]


def test_the_export_commands_read_the_index_that_index_made(capsys, tmp_path, monkeypatch):
    data = labelled_folder(tmp_path / "set", per_class=3)
    pictures = {}
    for run, first in (("alone", []), ("after", ["index"])):  # each export alone, then after `cnnexplorer index`
        monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / run))
        common = ["--model", "builtin:shapes", "--data", data]
        if first:
            assert run_cli(capsys, "index", *common)[0] == 0
        exports = [("atlas", ["--layer", "features.2.0", "--channels", "0-2"]),
                   ("neighbours", ["--layer", "flatten", "--image", data / "cat" / "00.png", "--k", "3"]),
                   ("map", ["--layer", "flatten"])]
        for view, flags in exports:
            out = tmp_path / f"{run}-{view}.png"
            assert run_cli(capsys, "export", view, *common, *flags, "--out", out)[0] == 0
            pictures[run, view] = np.asarray(Image.open(out))
        made = sorted((tmp_path / run / "index").glob("*.npz"))
        assert len(made) == (1 if first else 2), made  # alone: the atlas's, and the one the others share
    for view in ("atlas", "neighbours", "map"):
        np.testing.assert_array_equal(pictures["after", view], pictures["alone", view])


def test_index_errors_are_one_line(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "index", "--model", "builtin:shapes", "--data", tmp_path / "empty",
                           "--cache", tmp_path / "c")
    assert_one_line_error(code, err, "holds no images")
    labelled_folder(tmp_path / "set", per_class=1)
    code, _, err = run_cli(capsys, "index", "--model", "builtin:shapes", "--data", tmp_path / "set",
                           "--layers", "features.0.00", "--cache", tmp_path / "c")
    assert_one_line_error(code, err, "unknown layer 'features.0.00'", "features.0.0")
    code, _, err = run_cli(capsys, "index", "--model", "builtin:shapes", "--data", tmp_path / "set", "--top-k", "0")
    assert_one_line_error(code, err, "--top-k")
    (tmp_path / "one").mkdir()
    (tmp_path / "set" / "cat" / "00.png").rename(tmp_path / "one" / "00.png")
    code, out, _ = run_cli(capsys, "index", "--model", "builtin:shapes", "--data", tmp_path / "one", "--cache",
                           tmp_path / "c")
    assert code == 0 and out.startswith(f"indexed 1 image of folder:{tmp_path / 'one'} (")


def test_two_processes_index_exactly_as_one(capsys, tmp_path):
    """Two gloo ranks on 127.0.0.1 (forked with torchrun's environment), each its half of the set (the second
    half starting mid-batch), merged in order: the same top images and positions, histograms and predictions
    as one process; float sums and features within 1e-5 (only the order of additions differs)."""
    data = labelled_folder(tmp_path / "set", per_class=5)
    argv = ["index", "--model", "builtin:shapes", "--data", data, "--top-k", "3", "--batch-size", "3", "--json",
            "--device", "cpu"]
    code, out, err = run_cli(capsys, *argv, "--cache", tmp_path / "one")
    assert code == 0, err
    stored = {"one": read_state(Path(last_json(out)["cache"]), Path(last_json(out)["cache"]).stem)}
    first, second = forked_ranks([*argv, "--cache", tmp_path / "two"], tmp_path)
    assert second == "" and Path(last_json(first)["cache"]).parent == tmp_path / "two"  # rank 0 writes and reports
    path = Path(last_json(first)["cache"])
    stored["two"] = read_state(path, path.stem)
    (one_meta, one), (two_meta, two) = stored["one"], stored["two"]
    assert two_meta["done"] == one_meta["done"] == 10 and sorted(one) == sorted(two)
    assert two_meta["parts"] == [[0, 5], [5, 10]] and "parts" not in one_meta
    assert not list((tmp_path / "two").glob("*partial*")), "each rank's partial state is removed at the end"
    for key in one:
        if one[key].dtype.kind == "f" and not key.endswith("hist_edges"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(two[key], one[key], err_msg=key)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_at_a_terminal_stops_between_batches_and_the_next_run_resumes(capsys, tmp_path, signum):
    """The first signal stops the pass at its next batch, which saves its progress; the next run continues it."""
    import pty  # (POSIX only)
    import select

    data = labelled_folder(tmp_path / "set", per_class=300)
    argv = ["index", "--model", "builtin:shapes", "--data", str(data), "--layers", "features.0.0,classifier",
            "--batch-size", "1", "--json"]
    terminal, stderr = pty.openpty()  # a terminal, where the progress bar shows and Ctrl-C is pressed
    process = subprocess.Popen([sys.executable, "-m", "cnnexplorer", *argv, "--cache", str(tmp_path / "stopped")],
                               stdout=subprocess.PIPE, stderr=stderr, cwd=Path(__file__).parents[2])
    os.close(stderr)
    shown = b""
    try:
        deadline = time.monotonic() + 120
        while b" images" not in shown and time.monotonic() < deadline and process.poll() is None:
            if select.select([terminal], [], [], 0.1)[0]:
                shown += os.read(terminal, 4096)
        process.send_signal(signum)  # a batch or so into the pass
        out, _ = process.communicate(timeout=120)
        while select.select([terminal], [], [], 0.5)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        process.kill()
        os.close(terminal)
    text = shown.decode(errors="replace")
    assert process.returncode == 130 and not out, text
    assert "stopping after the current step" in text and "cnnexplorer: interrupted" in text
    assert list((tmp_path / "stopped").glob("*.partial.npz")), "the stopped pass saved its progress"
    code, out, err = run_cli(capsys, *argv, "--cache", tmp_path / "stopped")
    assert code == 0 and "resumed at image" in err, err
    resumed = Path(last_json(out)["cache"])
    code, out, _ = run_cli(capsys, *argv, "--cache", tmp_path / "whole")
    whole = Path(last_json(out)["cache"])
    assert resumed.name == whole.name and not list((tmp_path / "stopped").glob("*partial*"))
    (_, got), (_, expected) = read_state(resumed, resumed.stem), read_state(whole, whole.stem)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
