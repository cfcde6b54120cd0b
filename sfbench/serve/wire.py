"""openpi's wire encoding: msgpack, numpy arrays and scalars as maps with bytes keys.

An array is ``{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str, b"shape": shape}``
and a numpy scalar ``{b"__npgeneric__": True, b"data": value, b"dtype": dtype.str}``, exactly as
``openpi_client.msgpack_numpy`` writes them, so either side can be openpi's own code. Decoded
arrays are read-only views of the frame.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

_REFUSED_KINDS = "VOc"  # void, object and complex arrays have no portable encoding


class WireError(ValueError):
    """A frame that is not a valid msgpack-numpy message."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_KINDS:
        raise WireError(f"cannot send arrays of dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": obj.dtype.str,
                b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def packb(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, numbers, numpy arrays and scalars)."""
    try:
        return msgpack.packb(obj, default=_encode, use_bin_type=True)
    except (TypeError, ValueError) as e:
        raise WireError(str(e)) from None


def unpackb(data: bytes) -> Any:
    """Decode one frame; :class:`WireError` when it is not msgpack-numpy."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError, KeyError) as e:
        raise WireError(f"not a msgpack-numpy frame ({type(e).__name__}: {e})") from None
