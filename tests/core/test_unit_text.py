"""A layer that gives the model's class scores names its units as classes."""

from __future__ import annotations

from cnnexplorer.core.architecture import summarize_handle
from cnnexplorer.core.layer_text import gives_class_scores, unit_text
from cnnexplorer.core.models import load_model


def test_only_the_layers_that_give_the_class_scores_have_classes_as_units():
    summary = summarize_handle(load_model("builtin:shapes", "cpu"))
    assert gives_class_scores(summary, "classifier")
    assert not any(gives_class_scores(summary, name) for name in ("", "features.2.0", "pool", "flatten", "nope"))
    assert unit_text(3, ["circle", "square", "triangle", "star"]) == "class 3: star"
    assert unit_text(3) == "channel 3"
