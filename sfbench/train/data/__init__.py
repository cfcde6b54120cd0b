"""Training data: LIBERO-layout HDF5 demos, datasets, subsets, batches."""
