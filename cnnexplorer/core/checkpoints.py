"""Model files: the app's own checkpoint format, and reading every kind of weights file safely.

The app checkpoint is a plain dict of tensors, strings and numbers, so it loads with
``torch.load(weights_only=True)`` and carries what a bare state_dict lacks: the architecture,
class names and preprocessing. Other files are read without running code: state_dicts (also
nested, as Lightning and training scripts save them) and safetensors. A file that needs full
unpickling is refused with ``NeedsTrust`` unless the caller passes ``trust=True``, because
unpickling can run arbitrary code.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from cnnexplorer.core.errors import UserError
from cnnexplorer.core.input_files import require_regular_file
from cnnexplorer.core.model_handle import Preprocessing
from cnnexplorer.core.outputs import atomic_write_bytes

CHECKPOINT_FORMAT = "cnnexplorer-checkpoint"
CHECKPOINT_VERSION = 1
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net")
KEY_PREFIXES = ("module.", "model.", "_orig_mod.")
_CLASS_KEYS = ("class_names", "classes")
_KINDS = "a cnnexplorer checkpoint, a state_dict, a .safetensors file or (with --trust) a pickled nn.Module"


class NeedsTrust(UserError):
    """The file is a full pickle: loading it may run code, so the user must say they trust it."""


@dataclass
class ModelFile:
    """What a model file held. ``kind`` is ``checkpoint``, ``state_dict`` or ``module``."""

    path: Path
    kind: str
    state_dict: dict[str, torch.Tensor] | None = None
    module: nn.Module | None = None
    arch: str | None = None
    class_names: list[str] | None = None
    preprocessing: Preprocessing | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def save_checkpoint(path: str | Path, module: nn.Module, arch: str, class_names: Sequence[str],
                    preprocessing: Preprocessing, extra: dict | None = None) -> Path:
    """Write an app checkpoint atomically; it loads with ``torch.load(weights_only=True)``.

    ``extra`` may hold only plain values (str, numbers, bool, None, lists, dicts) and tensors,
    so that the file never needs trust to be read back.
    """
    from cnnexplorer.core.arch_specs import ARCH_KINDS

    if arch.partition(":")[0] not in ARCH_KINDS:
        raise ValueError(f"arch must be an architecture spec ({', '.join(k + ':' for k in ARCH_KINDS)}), not {arch!r}")
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": arch,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "class_names": [str(n) for n in class_names],
        "preprocessing": {
            "channels": preprocessing.channels,
            "size": list(preprocessing.size),
            "mean": list(preprocessing.mean),
            "std": list(preprocessing.std),
            "resize": preprocessing.resize,
            "interpolation": preprocessing.interpolation,
        },
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for key, item in value.items():
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__name__}; checkpoints hold only plain values and tensors")


def read_model_file(path: str | Path, trust: bool = False) -> ModelFile:
    """Read a model file of any supported kind; ``UserError`` if it is none of them."""
    path = Path(path)
    require_regular_file(path, "model file", "pass a .pt, .pth, .ckpt, .safetensors or .bin file")
    with path.open("rb") as stream:
        head = stream.read(16)
    if path.suffix.lower() == ".safetensors" or _looks_like_safetensors(head, path.stat().st_size):
        return _read_safetensors(path)
    return _classify(path, _torch_load(path, head, trust))


def _brief(exc: BaseException) -> str:
    """An exception as one line, for the one-line messages the CLI prints."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _not_a_model(path: Path, why: str = "") -> UserError:
    return UserError(f"{path} is not a model file{f' ({why})' if why else ''}; expected {_KINDS}")


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length followed by a JSON object."""
    return len(head) >= 9 and 0 < int.from_bytes(head[:8], "little") <= size - 8 and head[8:9] == b"{"


def _read_safetensors(path: Path) -> ModelFile:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as reader:
            metadata = dict(reader.metadata() or {})
            state = {key: reader.get_tensor(key) for key in reader.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a valid safetensors file ({_brief(exc)}); re-download or re-export it") from None
    if not state:
        raise _not_a_model(path, "the safetensors file holds no tensors")
    return ModelFile(path, "state_dict", state_dict=state, extra=metadata)


def _legacy_torch_header(head: bytes) -> bool:
    """True for the pre-1.6 ``torch.save`` format, which starts with a pickled magic number."""
    magic = torch.serialization.MAGIC_NUMBER
    return any(head.startswith(pickle.dumps(magic, protocol=p)[:12]) for p in range(2, 6))


def _torch_load(path: Path, head: bytes, trust: bool) -> Any:
    """``torch.load`` with weights_only; full unpickling only when trusted."""
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("constants.pkl") for n in names):
            raise UserError(f"{path} is a TorchScript archive, which is not supported; save the model's state_dict and pass --arch")
        if not any(n.endswith("data.pkl") for n in names):
            raise _not_a_model(path, "a zip archive without PyTorch data")
    elif not _legacy_torch_header(head):
        raise _not_a_model(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        unsafe = _unsafe_globals(path, is_zip)
        if not unsafe:
            raise _not_a_model(path, "its data is damaged") from None
    except Exception as exc:  # a damaged file can fail inside torch.load in many ways
        raise _not_a_model(path, f"damaged: {_brief(exc)}") from None
    if not trust:
        shown = ", ".join(unsafe[:3]) + (f" and {len(unsafe) - 3} more" if len(unsafe) > 3 else "")
        raise NeedsTrust(
            f"{path} needs full unpickling (it refers to {shown}), which can run arbitrary code when loaded; "
            "pass --trust (CLI) or confirm (GUI) only if you trust its source"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise UserError(
            f"{path} is a pickled model whose code cannot be imported ({_brief(exc)}); run from the project that "
            "defines its class, or save its state_dict and pass --arch"
        ) from None
    except Exception as exc:  # trusted unpickling may fail in any way the file's code chooses
        raise _not_a_model(path, f"damaged: {_brief(exc)}") from None


def _unsafe_globals(path: Path, is_zip: bool) -> list[str]:
    """What a weights-only load refused; [] when the pickle data is damaged instead."""
    if not is_zip:
        return ["Python objects"]  # the pre-1.6 format cannot be inspected without unpickling
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # the pickle data is damaged: the caller reports that
        return []


def _is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _classify(path: Path, content: Any) -> ModelFile:
    if isinstance(content, nn.Module):
        return ModelFile(path, "module", module=content)
    if not isinstance(content, Mapping):
        raise _not_a_model(path, f"it holds a {type(content).__name__}, not model weights")
    if content.get("format") == CHECKPOINT_FORMAT:
        return _read_checkpoint(path, content)
    if _is_tensor_dict(content):
        return ModelFile(path, "state_dict", state_dict=dict(content))
    for key in NESTED_KEYS:
        inner = content.get(key)
        if isinstance(inner, nn.Module):
            found = ModelFile(path, "module", module=inner)
        elif _is_tensor_dict(inner):
            found = ModelFile(path, "state_dict", state_dict=dict(inner))
        else:
            continue
        found.class_names = next(
            (list(map(str, content[k])) for k in _CLASS_KEYS if isinstance(content.get(k), (list, tuple))), None
        )
        found.extra = {k: v for k, v in content.items() if k != key and isinstance(v, (str, int, float, bool))}
        found.notes.append(f"weights taken from the file's '{key}' entry")
        return found
    raise _not_a_model(path, f"a dict with keys {', '.join(map(str, list(content)[:5]))} but no weights")


def _read_checkpoint(path: Path, content: Mapping) -> ModelFile:
    version = content.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise UserError(
            f"{path} is a cnnexplorer checkpoint of version {version!r}, which this version reads "
            f"only up to {CHECKPOINT_VERSION}; update cnnexplorer"
        )
    try:
        pre = content["preprocessing"]
        preprocessing = Preprocessing(
            channels=int(pre["channels"]),
            size=tuple(int(s) for s in pre["size"]),
            mean=tuple(float(m) for m in pre["mean"]),
            std=tuple(float(s) for s in pre["std"]),
            resize=None if pre.get("resize") is None else int(pre["resize"]),
            interpolation=str(pre.get("interpolation", "bilinear")),  # older checkpoints: always bilinear
        )
        arch, state, names = content["arch"], content["state_dict"], [str(n) for n in content["class_names"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is a damaged cnnexplorer checkpoint (bad or missing entry: {_brief(exc)}); save it again") from None
    except UserError as exc:
        raise UserError(f"{path} is a damaged cnnexplorer checkpoint: {exc}") from None
    if not isinstance(arch, str) or not _is_tensor_dict(state):
        raise UserError(f"{path} is a damaged cnnexplorer checkpoint (no arch or weights); save it again")
    return ModelFile(
        path, "checkpoint", state_dict=dict(state), arch=arch, class_names=names,
        preprocessing=preprocessing, extra=dict(content.get("extra") or {}),
    )


def align_keys(state: Mapping[str, torch.Tensor], expected: Iterable[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Strip wrapper prefixes (``module.``, ``model.``, ``_orig_mod.``) while that fits better.

    Returns the re-keyed state and the prefix removed ("" when none helped). Keys without the
    prefix (a Lightning module's loss weights, say) are dropped with it.
    """
    expected = set(expected)
    best, removed = dict(state), ""
    while True:
        for prefix in KEY_PREFIXES:
            candidate = {k[len(prefix):]: v for k, v in best.items() if k.startswith(prefix)}
            if len(expected & candidate.keys()) > len(expected & best.keys()):
                best, removed = candidate, removed + prefix
                break
        else:
            return best, removed


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, arch: str) -> None:
    """Load ``state`` into ``module``, or raise ``UserError`` listing what does not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {_shape(state[k])}, model {_shape(own[k])}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        groups = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
        listing = "; ".join(_listing(what, items) for what, items in groups if items)
        raise UserError(f"{source} does not fit {arch}: {listing}; pass the --arch the weights were trained with")
    module.load_state_dict(state, strict=False)


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def _listing(what: str, items: list[str], shown: int = 3) -> str:
    more = f", … {len(items) - shown} more" if len(items) > shown else ""
    return f"{what}: {len(items)} ({', '.join(items[:shown])}{more})"
