"""Shared foundations: errors, protocol profiles, task specs, observation keys, geometry, I/O."""
