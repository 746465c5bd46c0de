"""cnnexplorer: see what a convolutional neural network has learned.

Importing the package sets two process-wide defaults. The heap keeps the blocks a forward pass frees
for the next one (``core.free_memory.reuse_freed_blocks``). And, before torch's OpenMP loads,
idle intra-op threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning after each
parallel region. Spinning threads starve whatever else runs between torch calls: the GUI's
event loop, and the single-threaded copies that record activations (measured on 2 cores:
capturing every resnet50 layer took 2.0× a forward pass with spinning threads, 1.2× without).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cnnexplorer.core import free_memory  # noqa: E402 - after the environment it reads

free_memory.reuse_freed_blocks()

__version__ = "0.1.0"
