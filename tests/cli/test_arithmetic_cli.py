"""``cnnexplorer arithmetic``: the course's sizes beside PyTorch's, parameters, MACs and trade-offs."""

from __future__ import annotations

import torch
from torch import nn

from tests.cli.cli_helpers import assert_one_line_error, last_json, run_cli


def test_conv_json_has_the_course_figures_and_pytorchs_size(capsys):
    code, out, _ = run_cli(capsys, "arithmetic", "conv", "--size", "10", "--kernel", "3", "--stride", "2",
                           "--padding", "0", "--filters", "8", "--depth", "3", "--json")
    data = last_json(out)
    assert code == 0 and (data["output"], data["exact"], data["valid"]) == (4, 4.5, False)
    assert data["params"] == 8 * (3 * 3 * 3 + 1) == sum(p.numel() for p in nn.Conv2d(3, 8, 3).parameters())
    assert data["macs"] == 4 * 4 * 8 * 27
    assert nn.Conv2d(3, 8, 3, stride=2)(torch.zeros(1, 3, 10, 10)).shape[-1] == data["output"]


def test_text_says_not_possible_and_what_pytorch_does(capsys):
    code, out, _ = run_cli(capsys, "arithmetic", "conv", "--size", "10", "--kernel", "3", "--stride", "2")
    assert code == 0 and "4.5: not possible" in out and "floors it to 4×4" in out
    code, out, _ = run_cli(capsys, "arithmetic", "pool", "--size", "10", "--kernel", "3", "--stride", "2")
    assert "ceil_mode=True gives 5×5" in out
    code, out, _ = run_cli(capsys, "arithmetic", "conv", "--size", "32", "--kernel", "5", "--padding", "same", "--json")
    assert last_json(out)["padding"] == 2 and last_json(out)["output"] == 32


def test_transposed_and_tradeoffs(capsys):
    code, out, _ = run_cli(capsys, "arithmetic", "transposed", "--size", "3", "--kernel", "3", "--padding", "2",
                           "--json")
    data = last_json(out)
    assert code == 0 and data["course_output"] == 5 and data["torch_padding"] == 0 and data["torch_output"] == 1
    code, out, _ = run_cli(capsys, "arithmetic", "tradeoffs", "--json")
    totals = {t["name"]: (t["before_total"], t["after_total"]) for t in last_json(out)["tradeoffs"]}
    assert totals["depthwise_separable"] == (19_200, 843) and totals["inception_reduction"][0] == 854_196_224
    code, out, _ = run_cli(capsys, "arithmetic", "tradeoffs", "--channels", "10")
    assert "49·" not in out and "10·(7·7·10 + 1) = 4,910" in out


def test_bad_arithmetic_is_one_line(capsys):
    code, _, err = run_cli(capsys, "arithmetic", "conv", "--size", "10", "--kernel", "4", "--padding", "same")
    assert_one_line_error(code, err, "'same' padding")
    code, _, err = run_cli(capsys, "arithmetic", "conv", "--size", "10", "--kernel", "3", "--filters", "4")
    assert_one_line_error(code, err, "--depth")
