"""Training: datasets, the trainer loop, Spatial Forcing alignment and its frozen teachers."""
