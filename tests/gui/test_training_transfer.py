"""The Training tab's transfer-learning settings: a new head, one sigmoid output, the layer to unfreeze from, the
base's rate and the auxiliary losses make the run's request; a head spec that does not parse is refused in the tab."""

from __future__ import annotations

from dataclasses import replace

import torch
import torchvision

from cnnexplorer.core.models import load_model
from cnnexplorer.gui.session import Session
from cnnexplorer.gui.views.training_view import TrainingView
from cnnexplorer.gui.workers import JobRunner
from tests.gui.test_training_view import make_folder


def make_view(qtbot):
    session, jobs = Session(), JobRunner()
    view = TrainingView(session, jobs)
    qtbot.addWidget(view)
    view.show()
    return view, session, jobs


def test_the_form_makes_the_transfer_request_and_a_bad_head_spec_is_refused_in_the_tab(qtbot, tmp_path):
    view, session, jobs = make_view(qtbot)
    messages = []
    jobs.message.connect(messages.append)
    session.set_model(load_model("builtin:tinyvgg", "cpu"))
    form = view.settings
    layers = [form.unfreeze_from.itemText(k) for k in range(form.unfreeze_from.count())]
    assert layers == ["", "features.0", "features.2", "features.5", "features.7"]  # the base's, not the classifier
    assert not form.unfreeze_from.isEnabled() and form.aux.isHidden()  # tinyvgg has no auxiliary classifiers
    session.set_layer("features.5")
    assert "features.5, the selected layer" in form.unfreeze_from.lineEdit().placeholderText()

    form.data.setText(f"folder:{make_folder(tmp_path / 'data')}")
    form.head.setText("32,relu,dropout=0.5")
    form.binary.setChecked(True)
    form.freeze_base.setChecked(True)
    form.unfreeze_from.setEditText("features.5")
    form.base_lr.setValue(1e-4)
    config = form.request(session.model).config
    assert (config.head, config.binary, config.freeze_base, config.unfreeze_from, config.base_lr, config.aux_weight) \
        == ("32,relu,dropout=0.5", True, True, "features.5", 1e-4, 0.3)
    plan = view.plan.text()
    assert "a new head takes its place: Flatten → Linear 32 → ReLU → Dropout 0.5 → Linear 1 → sigmoid" in plan
    assert "from features.5 on" in plan and "learn at 0.0001" in plan

    form.unfreeze_from.setEditText("features.55")
    assert "no layer 'features.55'" in view.plan.text() and "did you mean features.5" in view.plan.text()
    form.unfreeze_from.setEditText("features.5")

    form.head.setText("32,relux")
    assert form.head_problem.isVisible() and "'relux' is not a layer; did you mean relu?" in form.head_problem.text()
    assert "The settings cannot start a run: cannot read the head spec" in view.plan.text()
    view.start()
    assert view.job is None and "Cannot start: cannot read the head spec '32,relux'" in view.status.text()
    assert not messages  # said in the tab, not in a dialog
    form.head.setText("32,relu")
    assert form.head_problem.isHidden()


def test_the_auxiliary_losses_checkbox_shows_for_a_model_with_auxiliary_classifiers(qtbot):
    view, session, _ = make_view(qtbot)
    shapes = load_model("builtin:shapes", "cpu")
    with torch.device("meta"):  # only its layout matters here
        googlenet = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    session.set_model(replace(shapes, module=googlenet, spec="torchvision:googlenet:none"))
    assert view.settings.aux.isVisible()
    view.settings.aux.setChecked(False)
    assert view.settings.config().aux_weight == 0.0
    assert "auxiliary classifiers' losses are left out" in view.plan.text()
    session.set_model(shapes)
    assert view.settings.aux.isHidden()
