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
