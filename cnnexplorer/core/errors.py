"""Errors a user can cause, kept apart from programming errors.

A ``UserError`` carries a message that names the problem and the fix; the CLI prints it on
one line and exits with code 2, the GUI shows it in a message box. Anything else is a bug and
is allowed to fail loudly.
"""


class UserError(Exception):
    """A problem with the user's input (a file, a spec, an option), with a clear message."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for running out of memory: on CUDA or MPS, in torch's CPU allocator, or in Python."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in ("out of memory", "can't allocate memory"))


OUT_OF_MEMORY_HINT = (
    "The device ran out of memory. Try a smaller image, size or batch, another layer, "
    "or (from a GPU) switch the device to the CPU."
)
