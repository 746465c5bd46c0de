"""Every indexed layer's record, merged a batch at a time.

Merged layer by layer, a batch costs a few dozen small operations per layer (and on a GPU, six copies
of each layer's summary to the host, each one a wait), paid again for every layer whatever its size:
on a small model they weigh as much as the reductions over every value. ``LayerGroup`` keeps the
layers' top-k tables as one table, each layer's rows a view of it (``LayerAccumulator.top_values``
and the rest), so a batch's summaries cross to the host in two copies and its candidates from every
layer are merged by one stable sort. Each layer's record stays its own for saving, resuming and
reading (``LayerAccumulator.state``, ``result``).
"""

from __future__ import annotations

import numpy as np
import torch

from cnnexplorer.core.dataset.layer_stats import TOP_FIELDS, BatchSummary, LayerAccumulator


class LayerGroup:
    """The records of ``layers`` (at least one, all with the same k), merged together (see the module notes).

    The group takes over their top-k tables and thresholds: each layer's ``threshold`` is a view of the
    table's last column, so it is always every channel's exact k-th value.
    """

    def __init__(self, layers: list[LayerAccumulator]):
        self.layers = list(layers)
        sizes = [len(layer.top_values) for layer in self.layers]
        self.starts = np.cumsum([0, *sizes])
        self.top_k = self.layers[0].top_k
        for key in TOP_FIELDS:
            setattr(self, key, np.concatenate([getattr(layer, key) for layer in self.layers]))
        for layer, start, stop in zip(self.layers, self.starts, self.starts[1:]):
            for key in TOP_FIELDS:
                setattr(layer, key, getattr(self, key)[start:stop])
            layer.threshold = torch.from_numpy(self.top_values[start:stop, -1])
        self.width = np.concatenate([np.full(size, layer.map_size[1] if layer.map_size else 1, np.int64)
                                     for layer, size in zip(self.layers, sizes)])

    def add(self, first: int, summaries: list[BatchSummary | None]) -> None:
        """Take the batch of images ``first …``: each layer's summary (None for a layer the batch did not reach)."""
        parts = [(layer, start, summary) for layer, start, summary in zip(self.layers, self.starts, summaries)
                 if summary is not None]
        if not parts:
            return
        reals = torch.cat([tensor.reshape(-1).float() for _, _, summary in parts
                           for tensor in (summary.values, summary.sums)]).cpu().numpy()
        wholes = torch.cat([tensor.reshape(-1).long() for _, _, summary in parts
                            for tensor in (summary.images, summary.positions)]).cpu().numpy()
        units, images, values, positions = [], [], [], []
        real = whole = 0
        for layer, start, summary in parts:
            found, channels = len(summary.values), len(summary.sums)
            values.append(reals[real:real + found])
            layer.sums += reals[real + found:real + found + channels]
            real += found + channels
            images.append(wholes[whole:whole + found])
            positions.append(wholes[whole + found:whole + 2 * found])
            whole += 2 * found
            units.append(summary.units.cpu().numpy() + start)
            layer.elements += summary.elements
            layer.take_sample(summary.sample)
        units, images, values, positions = (np.concatenate(column) for column in (units, images, values, positions))
        above = values > self.top_values[units, -1]  # all of them, unless a batch's own top-k came whole
        if not above.all():
            units, images, values, positions = units[above], images[above], values[above], positions[above]
        if len(units):
            self._merge(units, images + first, values, positions)

    def _merge(self, units: np.ndarray, images: np.ndarray, values: np.ndarray, positions: np.ndarray) -> None:
        """The candidates (by unit, ascending; within a unit, equal values in image order) laid out a row per channel
        that has any, after the record's entries (a stable sort ranks ties by image), and merged into its top-k."""
        channels, per_unit = np.unique(units, return_counts=True)
        row = np.searchsorted(channels, units)
        rank = np.arange(len(units)) - (np.cumsum(per_unit) - per_unit)[row]
        width = self.width[units]
        laid = {"top_values": (np.float32(-np.inf), values), "top_images": (-1, images),
                "top_y": (0, positions // width), "top_x": (0, positions % width)}
        joined = {}
        for key, (blank, column) in laid.items():
            table = getattr(self, key)
            block = np.full((len(channels), per_unit.max()), blank, table.dtype)
            block[row, rank] = column
            joined[key] = np.concatenate([table[channels], block], axis=1)
        kept = np.argsort(-joined["top_values"], axis=1, kind="stable")[:, : self.top_k]
        for key, column in joined.items():
            getattr(self, key)[channels] = np.take_along_axis(column, kept, 1)
