"""Errors a user can cause, kept apart from programming errors.

A ``UserError`` carries a message that names the problem and the fix; the CLI prints it on
one line and exits with code 2, the GUI shows it in a message box. Anything else is a bug and
is allowed to fail loudly.
"""


class UserError(Exception):
    """A problem with the user's input (a file, a spec, an option), with a clear message."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or MPS) out-of-memory error, whatever torch version raised it."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc)


OUT_OF_MEMORY_HINT = (
    "The device ran out of memory. Try a smaller image or batch, another layer, "
    "or switch the device to the CPU."
)
