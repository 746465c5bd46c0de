"""``cnnexplorer train`` with bad input: one line on stderr, exit 2, and no file that claims what it does not hold."""

from __future__ import annotations

import pytest
import torch

from cnnexplorer.core.checkpoints import read_model_file
from tests.cli.cli_helpers import last_json, run_cli
from tests.cli.test_train import make_folder

QUICK = ("--model", "builtin:lenet5", "--batch-size", "16", "--epochs", "1")


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


def test_a_diverging_adam_run_writes_nothing_and_says_so(tmp_path, capsys):
    data = make_folder(tmp_path / "pets", per_class=8)
    out = tmp_path / "inf.pt"
    code, stdout, err = run_cli(capsys, "train", *QUICK, "--batch-size", "4", "--epochs", "2", "--data",
                                f"folder:{data}", "--optimizer", "adam", "--lr", "1e30", "--out", out, "--json")
    line = _one_line_error(code, err)
    assert "became" in line and f"nothing was written to {out}" in line and "kept in" not in line
    assert not out.exists() and not (tmp_path / "inf.best.pt").exists()
    report = last_json(stdout)
    assert report["checkpoint"] == "" and report["best_checkpoint"] == "" and report["epochs"] == 0


def _train_once(tmp_path, capsys, data) -> tuple:
    out = tmp_path / "run.pt"
    code, _, _ = run_cli(capsys, "train", *QUICK, "--batch-size", "4", "--data", f"folder:{data}", "--schedule", "none",
                         "--out", out)
    assert code == 0
    return out, out.read_bytes()


def test_a_run_that_diverges_after_its_resume_leaves_the_good_checkpoint_on_disk(tmp_path, capsys):
    out, _ = _train_once(tmp_path, capsys, make_folder(tmp_path / "pets", per_class=8))
    stored = torch.load(out, weights_only=True)
    training = stored["extra"]["training"]
    for group in training["optimizer"]["param_groups"]:
        group["lr"] = group["initial_lr"] = 1e30  # a legal rate, far too high
    training["schedule"]["base_lrs"] = [1e30]
    torch.save(stored, out)
    before = out.read_bytes()
    code, stdout, err = run_cli(capsys, "train", "--resume", out, "--epochs", "3", "--out", out)
    assert f"nothing was written to {out}" in _one_line_error(code, err)
    assert f"wrote nothing to {out}" in stdout
    assert out.read_bytes() == before and read_model_file(out).extra["training"]["epochs_done"] == 1


def test_resuming_a_finished_run_says_there_is_nothing_to_do(tmp_path, capsys):
    out, before = _train_once(tmp_path, capsys, make_folder(tmp_path / "pets", per_class=8))
    for more in ((), ("--epochs", "1")):
        code, stdout, err = run_cli(capsys, "train", "--resume", out, "--out", out, *more)
        line = _one_line_error(code, err)
        assert "already has 1 epochs" in line and "--epochs 2" in line and "wrote" not in stdout
    assert out.read_bytes() == before


def test_resuming_onto_data_with_other_classes_is_refused(tmp_path, capsys):
    out, before = _train_once(tmp_path, capsys, make_folder(tmp_path / "pets", per_class=8))
    other = make_folder(tmp_path / "other", per_class=4)
    (other / "dogs").rename(other / "birds")
    code, _, err = run_cli(capsys, "train", "--resume", out, "--epochs", "2", "--data", f"folder:{other}",
                           "--out", out)
    line = _one_line_error(code, err)
    assert "2 classes (birds, cats)" in line and "trained on 2 classes (cats, dogs)" in line
    assert out.read_bytes() == before


@pytest.mark.parametrize("key, value", [("epochs", "x"), ("optimizer", "rmsprop"), ("momentum", float("nan")),
                                        ("augment", {"rotation": -5})])
def test_a_crafted_training_config_is_one_line(tmp_path, capsys, key, value):
    out, _ = _train_once(tmp_path, capsys, make_folder(tmp_path / "pets", per_class=8))
    stored = torch.load(out, weights_only=True)
    stored["extra"]["training"]["config"][key] = value
    torch.save(stored, tmp_path / "crafted.pt")
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "crafted.pt", "--epochs", "2",
                           "--out", tmp_path / "new.pt")
    assert "crafted.pt is damaged" in _one_line_error(code, err) and not (tmp_path / "new.pt").exists()


def test_unreadable_images_are_skipped_and_named_on_stderr(tmp_path, capsys):
    data = make_folder(tmp_path / "pets", per_class=8)
    bad = [data / "cats" / "empty.png", data / "dogs" / "readme.jpg"]
    bad[0].write_bytes(b"")
    bad[1].write_text("not a picture")
    code, stdout, err = run_cli(capsys, "train", *QUICK, "--data", f"folder:{data}", "--out", tmp_path / "run.pt",
                                "--json")
    assert code == 0 and last_json(stdout)["skipped"] == [str(p) for p in bad]
    for path in bad:
        assert err.count(f"cnnexplorer: skipped unreadable image {path} (") == 1


def test_a_folder_of_unreadable_images_is_one_line(tmp_path, capsys):
    for name in ("cats", "dogs"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "pets" / name / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, _, err = run_cli(capsys, "train", *QUICK, "--data", f"folder:{tmp_path / 'pets'}", "--out",
                           tmp_path / "run.pt")
    assert "can be read" in _one_line_error(code, err) and not (tmp_path / "run.pt").exists()
