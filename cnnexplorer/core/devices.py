"""Choosing a torch device by name, and describing its memory for the status bar."""

from __future__ import annotations

import torch

from cnnexplorer.core.errors import UserError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    """Names a user can pick: ``cpu``, each ``cuda:N`` and ``mps`` where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a device, with a clear error if it is absent.

    ``auto`` means CUDA if available, then MPS, then the CPU.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(
            f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' is not available: this machine has no CUDA GPU; use --device cpu")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device '{name}' is not available: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use cuda:0"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise UserError(f"device '{name}' is not available on this machine; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unsupported device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    return device


def memory_in_use(device: torch.device) -> str | None:
    """A short text such as ``1.2 GB`` of memory allocated by torch on a CUDA device."""
    if device.type != "cuda":
        return None
    used = torch.cuda.memory_allocated(device)
    return f"{used / 1e9:.2f} GB" if used >= 1e8 else f"{used / 1e6:.0f} MB"
