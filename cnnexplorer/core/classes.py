"""A class named by typed text: its index, its exact name (any case), or a unique part of its name."""

from __future__ import annotations

from cnnexplorer.core.errors import UserError


def find_class(class_names: list[str], text: str | int) -> int:
    """The index of the class ``text`` names; ``UserError`` for no class or several."""
    text = str(text).strip()
    lowered = [name.lower() for name in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    try:
        index = int(text)
    except ValueError:
        pass
    else:
        if not 0 <= index < len(class_names):
            raise UserError(f"class {index} is out of range: the model has classes 0 to {len(class_names) - 1}")
        return index
    matches = [i for i, name in enumerate(lowered) if text.lower() in name] if text else []
    if len(matches) == 1:
        return matches[0]
    which = f"unknown class '{text}'" if not matches else f"{len(matches)} classes match '{text}'"
    example = class_names[0] if class_names else "0"
    raise UserError(f"{which}: give an index from 0 to {len(class_names) - 1} or a class name such as '{example}'")
