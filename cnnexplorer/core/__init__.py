"""Pure PyTorch + numpy computations. Nothing in this package may import Qt."""
