"""sfbench: benchmark, training and evaluation harness for robot VLA policies."""

__version__ = "0.1.0"
