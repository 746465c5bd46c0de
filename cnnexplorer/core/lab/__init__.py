"""The course's lab: convolution arithmetic, hand-set kernels, design trade-offs, blocks, batch norm."""
