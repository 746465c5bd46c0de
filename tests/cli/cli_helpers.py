"""Running the CLI in-process, as the CLI tests do."""

from __future__ import annotations

import json

from cnnexplorer.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``cnnexplorer ARGV...`` (paths may be Path objects) → exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    """The JSON object a ``--json`` command prints as its last line."""
    return json.loads(out.strip().splitlines()[-1])


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """Exit code 2, exactly one line on stderr, no traceback, and each of ``words`` in that line."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


def _rank(rank: int, size: int, port: int, argv: list[str], out: str) -> None:
    """A forked rank: torchrun's environment, then ``cnnexplorer ARGV`` with stdout to ``out``; exits at once."""
    import contextlib
    import os

    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(size))
    code = 1
    try:
        torch.set_num_threads(1)
        with open(out, "w") as file, contextlib.redirect_stdout(file):
            code = main([str(a) for a in argv])
    finally:
        os._exit(code)


def forked_ranks(argv, folder, size: int = 2, timeout: float = 120) -> list[str]:
    """``cnnexplorer ARGV`` as ``size`` gloo ranks forked from this process, with the environment torchrun gives
    (the same code path as under torchrun, without a torch import per process); each rank's stdout.
    Asserts that every rank exited with 0."""
    import multiprocessing
    from pathlib import Path

    from cnnexplorer.core.distributed import free_port

    fork = multiprocessing.get_context("fork")
    port, outs = free_port(), [Path(folder) / f"rank{rank}.txt" for rank in range(size)]
    ranks = [fork.Process(target=_rank, args=(rank, size, port, list(argv), str(out))) for rank, out in enumerate(outs)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout)
    assert [p.exitcode for p in ranks] == [0] * size, [p.exitcode for p in ranks]
    return [out.read_text() for out in outs]
