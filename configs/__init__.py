"""The Hydra config tree (installed as ``sfbench.configs``): one folder per config group."""
