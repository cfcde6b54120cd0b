"""Success curves over training steps or data, from train runs' evaluated checkpoints."""
