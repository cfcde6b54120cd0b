"""Depth probes on frozen policies' visual tokens."""
