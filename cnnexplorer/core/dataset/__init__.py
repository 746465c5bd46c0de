"""The dataset explorer's core: probe sets, the dataset index, and what is read from it."""
