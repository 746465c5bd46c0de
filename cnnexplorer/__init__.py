"""cnnexplorer: see what a convolutional neural network has learned."""

__version__ = "0.1.0"
