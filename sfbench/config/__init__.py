"""The config tree: loading options, composing with overrides, sweeps, dataclass schemas."""
