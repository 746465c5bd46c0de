"""The shared current state that links every view: model, image, layer, unit and class.

Views never talk to each other; they read this object and listen to its signals, so a click
in one view (a tree row, an activation tile, a prediction bar) drives all the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QCoreApplication, QObject, Signal

from cnnexplorer.core.activations import ActivationCache
from cnnexplorer.core.images import LoadedImage
from cnnexplorer.core.interventions import Edits, Installed
from cnnexplorer.core.model_handle import ModelHandle
from cnnexplorer.core.predict import ClassScore


@dataclass(frozen=True)
class Unit:
    """One channel of one layer (the *current unit*)."""

    layer: str
    channel: int


class Session(QObject):
    model_changed = Signal(object)  # ModelHandle
    images_changed = Signal()  # the list of open images changed
    image_changed = Signal(object)  # LoadedImage | None: the current image
    layer_changed = Signal(object)  # str | None: dotted module name
    unit_changed = Signal(object)  # Unit | None
    target_changed = Signal(object)  # int | None: the target class index
    predictions_changed = Signal(object)  # list[ClassScore] for the current image
    interventions_changed = Signal(object)  # tuple[Edit, ...]: the edits now on the model (() when none)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.model: ModelHandle | None = None
        self.summary = None  # core.architecture.Summary of the model, when known
        self.images: list[LoadedImage] = []
        self.image: LoadedImage | None = None
        self.layer: str | None = None
        self.unit: Unit | None = None
        self.target: int | None = None
        self.predictions: list[ClassScore] = []
        self.activations = ActivationCache()
        """Recorded layer outputs every view and the tree share: switching layer for the same image
        runs no model. Emptied when the model changes."""
        self.interventions: Edits = ()
        """The user's edits (switched-off, mean, scaled or kept channels), installed on the model as
        hooks by ``_installed`` while any is on; the model's weights never change."""
        self._installed: Installed | None = None
        self.dataset_means: dict[str, tuple[float, ...]] = {}
        """Per layer the mean of each channel over the open dataset index (what "set to the dataset
        mean" uses); the Dataset tab fills it when an index is open."""
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._remove_edits)

    def set_interventions(self, edits: Edits) -> None:
        """Put ``edits`` on the current model (replacing any); every view computes again as for a
        moved model (``model_changed``), layer, unit and target staying. ``UserError`` for an
        unknown layer, with the edits as they were."""
        edits = tuple(edits)
        if edits == self.interventions or self.model is None:
            return
        installed = Installed(self.model.module, edits) if edits else None
        self._remove_edits()
        self._installed, self.interventions = installed, edits
        self.interventions_changed.emit(edits)
        self.set_moved_model(self.model)

    def clear_interventions(self) -> None:
        self.set_interventions(())

    def _remove_edits(self) -> None:
        if self._installed is not None:
            self._installed.remove()
            self._installed = None

    def set_model(self, handle: ModelHandle, summary=None) -> None:
        """A new model resets what depends on it: layer, unit, target, predictions and edits."""
        self._remove_edits()
        if self.interventions:
            self.interventions = ()
            self.interventions_changed.emit(())
        self.model = handle
        self.summary = summary
        self.layer = None
        self.unit = None
        self.target = None
        self.predictions = []
        self.activations.clear()
        self.model_changed.emit(handle)
        self.layer_changed.emit(None)
        self.unit_changed.emit(None)
        self.target_changed.emit(None)
        self.predictions_changed.emit([])

    def set_moved_model(self, handle: ModelHandle) -> None:
        """The same model on another device: layer, unit and target stay; predictions are redone."""
        self.model = handle
        self.predictions = []
        self.activations.clear()
        self.model_changed.emit(handle)
        self.predictions_changed.emit([])

    def add_images(self, images: list[LoadedImage]) -> None:
        """Append images (skipping ones already open) and make the last one current."""
        known = {im.sha256 for im in self.images}
        fresh = [im for im in images if im.sha256 not in known]
        self.images.extend(fresh)
        if fresh:
            self.images_changed.emit()
        if images:
            self.set_image(next(im for im in self.images if im.sha256 == images[-1].sha256))

    def remove_image(self, image: LoadedImage) -> None:
        self.images = [im for im in self.images if im is not image]
        self.images_changed.emit()
        if self.image is image:
            self.set_image(self.images[-1] if self.images else None)

    def set_image(self, image: LoadedImage | None) -> None:
        if image is self.image:
            return
        self.image = image
        self.predictions = []
        self.image_changed.emit(image)
        self.predictions_changed.emit([])

    def set_layer(self, name: str | None) -> None:
        if name == self.layer:
            return
        self.layer = name
        self.layer_changed.emit(name)

    def set_unit(self, unit: Unit | None) -> None:
        if unit is not None and unit.layer != self.layer:
            self.set_layer(unit.layer)
        if unit == self.unit:
            return
        self.unit = unit
        self.unit_changed.emit(unit)

    def set_target(self, index: int | None) -> None:
        if index == self.target:
            return
        self.target = index
        self.target_changed.emit(index)

    def set_predictions(self, scores: list[ClassScore]) -> None:
        self.predictions = list(scores)
        self.predictions_changed.emit(self.predictions)

    @property
    def effective_target(self) -> int | None:
        """The clicked target class, or else the top-1 prediction."""
        if self.target is not None:
            return self.target
        return self.predictions[0].index if self.predictions else None
