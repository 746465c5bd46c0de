"""Training and fine-tuning: data sources, transfer-learning surgery, the training loop and its curves.

Pure torch/numpy/PIL. The loop is a generator yielding small metric dataclasses, so the GUI and
the CLI drive the same code.
"""
