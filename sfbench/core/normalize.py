"""Quantile normalisation of actions and proprio to [-1, 1] (OpenVLA's ``BOUNDS_Q99`` scheme).

Statistics are ``{"q01": [...], "q99": [...]}`` per dimension, computed once over the training
demonstrations and saved next to the weights (``normalization.json``), so that the policy adapter
undoes exactly what the trainer did. A dimension whose range is degenerate (q99 - q01 below
``MIN_RANGE``, e.g. a joint that never moves in the data) maps to 0 and back to q01 instead of
dividing by ~0.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from sfbench.core.errors import InvalidConfig

Stats = dict[str, list[float]]
Array = TypeVar("Array", np.ndarray, torch.Tensor)

# Ranges narrower than this (in the data's units) count as constant dimensions.
MIN_RANGE = 1e-6


def compute_stats(values: np.ndarray) -> Stats:
    """1st and 99th percentiles of each column of ``values`` (N, D)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"compute_stats needs a non-empty (N, D) array, got shape {values.shape}")
    return {
        "q01": np.quantile(values, 0.01, axis=0).tolist(),
        "q99": np.quantile(values, 0.99, axis=0).tolist(),
    }


def check_stats(stats: object, dim: int, what: str) -> Stats:
    """Validate one stats entry (``q01``/``q99`` lists of ``dim`` finite floats, q01 <= q99)."""
    if not isinstance(stats, dict) or set(stats) < {"q01", "q99"}:
        raise InvalidConfig(f"{what} normalisation stats need keys 'q01' and 'q99', got {stats!r}")
    low, high = (np.asarray(stats[k], dtype=np.float64) for k in ("q01", "q99"))
    if low.shape != (dim,) or high.shape != (dim,):
        raise InvalidConfig(
            f"{what} normalisation stats must have {dim} values each, got {low.shape}, {high.shape}"
        )
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise InvalidConfig(f"{what} normalisation stats must be finite with q01 <= q99: {stats!r}")
    return {"q01": low.tolist(), "q99": high.tolist()}


def _bounds(stats: Stats, like: Array) -> tuple[Array, Array, Array]:
    """(low, range, constant-mask) as arrays of ``like``'s kind, dtype and device."""
    low, high = np.asarray(stats["q01"]), np.asarray(stats["q99"])
    span = high - low
    constant = span < MIN_RANGE
    span = np.where(constant, 1.0, span)
    if isinstance(like, torch.Tensor):
        low_t, span_t = (torch.as_tensor(a, dtype=like.dtype, device=like.device) for a in (low, span))
        return low_t, span_t, torch.as_tensor(constant, device=like.device)
    return low.astype(like.dtype), span.astype(like.dtype), constant


def normalize(x: Array, stats: Stats) -> Array:
    """Map ``x`` (..., D) from [q01, q99] to [-1, 1], clipping outliers; constant dims -> 0."""
    low, span, constant = _bounds(stats, x)
    y = 2.0 * (x - low) / span - 1.0
    if isinstance(y, torch.Tensor):
        return torch.where(constant, torch.zeros_like(y), y.clamp(-1.0, 1.0))
    return np.where(constant, 0.0, np.clip(y, -1.0, 1.0)).astype(x.dtype)


def unnormalize(y: Array, stats: Stats) -> Array:
    """Inverse of :func:`normalize`: [-1, 1] -> [q01, q99] (not clipped); constant dims -> q01."""
    low, span, constant = _bounds(stats, y)
    x = (y + 1.0) * 0.5 * span + low
    if isinstance(x, torch.Tensor):
        return torch.where(constant, low.expand_as(x), x)
    return np.where(constant, low, x).astype(y.dtype)
