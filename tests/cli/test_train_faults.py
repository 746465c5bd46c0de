"""``cnnexplorer train`` with bad input: one line on stderr, exit 2, and no file that claims what it does not hold."""

from __future__ import annotations

import pytest

from tests.cli.cli_helpers import run_cli


def _one_line_error(code: int, err: str) -> str:
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("cnnexplorer: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flags, shown", [
    (("--momentum", "nan"), "momentum"), (("--weight-decay", "-1"), "weight-decay"), (("--lr", "inf"), "lr"),
    (("--lr", "nan"), "lr"), (("--val-split", "nan"), "val-split"), (("--val-split", "-1"), "val-split"),
    (("--val-split", "1"), "val-split"), (("--unfreeze-top", "-5", "--freeze-base"), "unfreeze-top"),
    (("--epochs", "0"), "epochs"), (("--batch-size", "0"), "batch-size"),
    (("--augment", "rotation=nan"), "rotation"), (("--augment", "zoom=-3"), "zoom"),
    (("--augment", "shift=5"), "width_shift"), (("--augment", "blur=2"), "unknown augmentation 'blur'"),
])
def test_bad_options_are_refused_before_the_model_or_data_is_opened(tmp_path, capsys, flags, shown):
    # neither the model nor the data exists: an option error must come first
    code, _, err = run_cli(capsys, "train", "--model", "builtin:nothing", "--data", f"folder:{tmp_path / 'none'}",
                           "--out", tmp_path / "x.pt", *flags)
    assert shown in _one_line_error(code, err) and list(tmp_path.iterdir()) == []
