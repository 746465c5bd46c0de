"""Training and fine-tuning: data sources, transfer-learning surgery, the training loop and its curves.

Pure torch/numpy/PIL. A run is a ``run.TrainRequest`` that ``run.training_job`` sets up and trains;
the loop is a generator yielding small metric dataclasses, so the GUI and the CLI drive the same code.
"""
