"""A run says what it will do before it starts, and measures where its model starts on the same data."""

from __future__ import annotations

from cnnexplorer.core.jobs import drive
from cnnexplorer.core.models import load_model
from cnnexplorer.core.training.config import TrainConfig
from cnnexplorer.core.training.plan import Baseline, data_class_names, describe_plan
from cnnexplorer.core.training.run import RunReady, TrainRequest, training_job
from tests.core.test_training import _stripes


def test_the_plan_says_fine_tune_or_scratch_head_kept_or_replaced_and_what_is_frozen(tmp_path):
    shapes = load_model("builtin:shapes", "cpu")
    fine_tune = describe_plan(TrainRequest(model=shapes, data="builtin:shapes"))
    assert "Fine-tunes" in fine_tune and "drop at first" in fine_tune and "keeps its head" in fine_tune
    assert "Every layer is trained" in fine_tune

    lenet = load_model("builtin:lenet5", "cpu")
    _stripes(tmp_path / "data", 2, 0)
    spec = f"folder:{tmp_path / 'data'}"
    assert data_class_names(spec) == ["horizontal", "vertical"]
    new_head = describe_plan(TrainRequest(model=lenet, data=spec, scratch=True,
                                          config=TrainConfig(freeze_base=True, unfreeze_top=1, epochs=3)))
    assert "from scratch" in new_head and "replaced by a new one for the data's 2 classes" in new_head
    assert "Only the head (classifier) and the top 1 block of the base (features.6) are trained" in new_head
    assert "3 epochs" in new_head

    resumed = describe_plan(TrainRequest(resume=tmp_path / "run.pt", epochs=5))
    assert "Continues the run saved in run.pt" in resumed and "5 epochs" in resumed


def test_the_run_measures_the_starting_model_on_its_validation_data_before_the_first_step(tmp_path):
    _stripes(tmp_path / "data", 8, 0)
    request = TrainRequest(model=load_model("builtin:lenet5", "cpu"), data=f"folder:{tmp_path / 'data'}",
                           config=TrainConfig(epochs=1, batch_size=8, snapshots=False))
    items = []
    drive(training_job(request), items.append)
    (ready,) = [item for item in items if isinstance(item, RunReady)]
    assert items.index(ready) < next(k for k, item in enumerate(items) if type(item).__name__ == "BatchMetrics")
    assert "replaced by a new one for the data's 2 classes" in ready.plan
    assert ready.baseline is not None and 0 <= ready.baseline.val_acc <= 1
    assert ready.baseline.classes == 2 and ready.baseline.val_size == ready.data.val_size


def test_a_result_falls_short_when_worse_than_the_start_or_at_chance_level():
    fine_tune = Baseline(val_acc=0.97, classes=4, val_size=1000)
    assert not fine_tune.falls_short(0.97) and not fine_tune.falls_short(0.98)
    assert fine_tune.falls_short(0.96) and fine_tune.falls_short(None)
    new_head = Baseline(val_acc=0.24, classes=4, val_size=1000)
    assert new_head.falls_short(0.26)  # chance level, within sampling noise
    assert not new_head.falls_short(0.40) and new_head.falls_short(float("nan"))


def test_a_head_made_from_a_spec_is_named_for_what_it_is_when_its_checkpoint_trains_again():
    from dataclasses import replace

    from cnnexplorer.core.training.heads import apply_head

    lenet = load_model("builtin:lenet5", "cpu")
    apply_head(lenet.module, "64,relu", False, 10, lenet.input_size)  # as --head 64,relu left it in its checkpoint
    reopened = replace(lenet, spec="head.pt")
    again = describe_plan(TrainRequest(model=reopened, data="builtin:digits",
                                       config=TrainConfig(freeze_base=True, unfreeze_from="features.3")))
    new = "the new head at flatten: Flatten → Linear 64 → ReLU → Linear 10"
    assert f"Its head (flatten.3, the last layer of {new}, 10 classes) is kept if the data has the same" in again
    assert f"Only the head ({new}) and the base's" in again
