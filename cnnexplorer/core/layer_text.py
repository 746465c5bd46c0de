"""How a layer's facts read as text, written once for the Model tree, the Summary picture and
``cnnexplorer summary``: shapes, counts, kernel geometry, receptive field, totals.

``times`` is the multiplication sign: "×", or "x" for the picture's font, which lacks "×".
"""

from __future__ import annotations

from dataclasses import dataclass


def count_text(value: float) -> str:
    """``1234567`` → ``1.23 M``: a large count (MACs) in k/M/G with three significant digits."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.0f}"


def shape_text(shape, times: str = "×") -> str:
    """``(64, 56, 56)`` → ``64×56×56``; several outputs joined by commas; "" when unknown."""
    if not shape:
        return ""
    if all(isinstance(d, int) for d in shape):
        return times.join(map(str, shape))
    return ", ".join(shape_text(s, times) for s in shape)


def _sides(value, times: str, keep_both: bool = False) -> str:
    """``(3, 3)`` → ``3×3`` (or ``3`` unless ``keep_both``), ``(2, 1)`` → ``2×1``, an int as is."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(set(values)) == 1 and not keep_both:
        return str(values[0])
    return times.join(map(str, values if len(values) > 1 else values * 2))


def geometry_text(layer, times: str = "×") -> str:
    """Kernel, stride and padding as ``3×3 /1 /1``; "" for a layer without a kernel."""
    if layer.kernel_size is None:
        return ""
    parts = [_sides(layer.kernel_size, times, keep_both=True)]
    parts += [f"/{_sides(v, times)}" for v in (layer.stride, layer.padding) if v is not None]
    return " ".join(parts)


def rf_text(layer) -> str:
    """Receptive field size / jump (``11 / 4``), "" where it is not known."""
    return f"{layer.rf_size} / {layer.rf_jump}" if layer.rf_size else ""


def gives_class_scores(summary, layer: str) -> bool:
    """True when ``layer``'s output is the model's: one score (logit or probability) per class."""
    if summary is None or not summary.layers:
        return False
    try:
        shape = summary.layer(layer).output_shape
    except Exception:  # noqa: BLE001 - a layer the summary does not know (a call suffix, another model)
        return False
    return bool(layer) and shape is not None and tuple(shape) == tuple(summary.layers[0].output_shape or ())


def unit_text(index: int, class_names: list[str] | None = None) -> str:
    """``channel 5``, or ``class 5: tabby`` for a layer that gives the class scores (``class_names``)."""
    if class_names is None:
        return f"channel {index}"
    name = class_names[index] if 0 <= index < len(class_names) else "?"
    return f"class {index}: {name}"


def params_text(layer) -> str:
    """``1,234`` or ``1,234 (1,000 frozen)``."""
    frozen = layer.params - layer.trainable_params
    return f"{layer.params:,}" + (f" ({frozen:,} frozen)" if frozen > 0 else "")


@dataclass(frozen=True)
class LayerText:
    """One layer's cells: its short name (last part of the dotted path), type, output shape,
    parameters, MACs, kernel geometry, receptive field and call count (empty for one call)."""

    name: str
    type: str
    shape: str
    params: str
    macs: str
    geometry: str
    rf: str
    calls: str


def layer_text(layer, times: str = "×") -> LayerText:
    return LayerText(layer.name.rsplit(".", 1)[-1], layer.type, shape_text(layer.output_shape, times),
                     params_text(layer), count_text(layer.macs) if layer.macs else "",
                     geometry_text(layer, times), rf_text(layer),
                     f"{times}{layer.calls}" if layer.calls and layer.calls > 1 else "")


def totals_text(trainable: int, frozen: int, macs: int, input_size, times: str = "×") -> str:
    """``25,557,032 parameters (25,557,032 trainable, 0 frozen) · 4.09 G MACs at 3×224×224``."""
    return (f"{trainable + frozen:,} parameters ({trainable:,} trainable, {frozen:,} frozen) · "
            f"{count_text(macs)} MACs at {times.join(map(str, input_size))}")


def split_text(summary) -> str:
    """The course's split of the weights and MACs: ``conv 14.7 M params, 15.3 G MACs; fully connected
    124 M params, 124 M MACs``; "" for a model with neither."""
    parts = [f"{what} {count_text(params)} params, {count_text(macs)} MACs"
             for what, params, macs in (("conv", summary.conv_params, summary.conv_macs),
                                        ("fully connected", summary.fc_params, summary.fc_macs)) if params or macs]
    return "; ".join(parts)


def summary_totals(summary, times: str = "×") -> str:
    """``totals_text`` of a measured summary, with the course's conv / fully connected split:
    ``138,357,544 parameters (conv 14.7 M, fully connected 124 M; … trainable, 0 frozen) · 15.5 G MACs
    (conv 15.4 G, fully connected 124 M) at 3×224×224``; without the split for a model that lacks
    either kind of layer (it would only repeat the total)."""
    frozen = summary.total_params - summary.trainable_params
    if not (summary.conv_params and summary.fc_params):
        return totals_text(summary.trainable_params, frozen, summary.macs, summary.input_size, times)
    params = f"conv {count_text(summary.conv_params)}, fully connected {count_text(summary.fc_params)}"
    macs = f"conv {count_text(summary.conv_macs)}, fully connected {count_text(summary.fc_macs)}"
    return (f"{summary.total_params:,} parameters ({params}; {summary.trainable_params:,} trainable, {frozen:,} frozen)"
            f" · {count_text(summary.macs)} MACs ({macs}) at {times.join(map(str, summary.input_size))}")


FLOORED_MARK = "⌊⌋"
"""Shown beside a layer whose output size the course's formula gives as a fraction (PyTorch rounded it)."""


def floored_mark(layer) -> str:
    """``FLOORED_MARK`` for a layer whose output size was rounded, else ""."""
    return FLOORED_MARK if getattr(layer, "floored", None) else ""


def floored_tip(layer) -> str:
    """The tooltip of the mark: the course's arithmetic and what PyTorch did ("" when not rounded)."""
    if not getattr(layer, "floored", None):
        return ""
    return (f"{layer.floor_note}. The course calls such a size \"not possible\"; choose the padding or stride so "
            "that (W − F + 2P)/S + 1 is whole.")


RF_TIP = ("RF / jump: the receptive field, how many input pixels one unit of this output sees, and the "
          "jump, how many input pixels apart two neighbouring units are. From 1 / 1 at the input, each "
          "convolution or pooling with kernel k, stride s and dilation d makes RF = RF + (k − 1)·d·jump "
          "and jump = jump·s (the larger of height and width; a residual add or a concatenation takes "
          "the largest of its inputs).")
"""The tooltip of the receptive-field column, in the Model tree and the Summary tab."""

TABLE_COLUMNS = ("Layer", "Type", "Output", "Params", "MACs", "Kernel / stride / pad", "RF / jump", "Calls")
_RIGHT = {"Params", "MACs", "RF / jump", "Calls"}


def summary_table_text(summary, fmt: str = "tsv") -> str:
    """The layer table as text to paste elsewhere: tab-separated values (a spreadsheet) or a
    Markdown table, one row per module with its dotted name, then the totals."""
    rows = [TABLE_COLUMNS]
    for layer in summary.layers:
        if layer.name:
            text = layer_text(layer)
            rows.append((layer.name, text.type, text.shape, text.params, text.macs or "0", text.geometry, text.rf,
                         str(layer.calls) if layer.calls and layer.calls > 1 else ""))
    totals = f"Total: {summary_totals(summary)}"
    if fmt == "tsv":
        return "\n".join("\t".join(row) for row in rows) + f"\n\n{totals}\n"
    if fmt == "markdown":
        lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---:" if c in _RIGHT else "---" for c in TABLE_COLUMNS) + "|")
        return "\n".join(lines) + f"\n\n{totals}\n"
    raise ValueError(f"unknown table format {fmt!r}: tsv or markdown")
