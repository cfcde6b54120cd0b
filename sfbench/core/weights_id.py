"""The identity of a checkpoint's weights: a hash of its tensors, not of the files that hold them.

Re-sharding identical weights (one ``model.safetensors`` or five shards, another header order,
another ``__metadata__``) must not make a new run or a new leaderboard cell, so the id covers each
tensor's name, dtype, shape and bytes, in name order, and nothing else. Reading the bytes once costs
what hashing the files did. Per-file tensor digests are cached by (path, size, mtime): this module
is the one owner of that cache.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from pathlib import Path

import torch

from sfbench.core.errors import InvalidConfig

# (resolved path, size, mtime_ns) -> {tensor name: (dtype, shape, sha256 of its bytes)}
_FILE_DIGESTS: dict[tuple[str, int, int], dict[str, tuple[str, tuple[int, ...], str]]] = {}
_BLOCK = 1 << 20


def weights_id(paths: list[Path] | tuple[Path, ...]) -> str:
    """sha256 (hex) over every tensor of ``paths``: ``.safetensors`` files and torch ``.pt`` state dicts.

    A ``.pt`` file's tensor names are prefixed by the part of its file name before ``--`` (OFT's
    ``action_head--<step>_checkpoint.pt`` -> ``action_head.``), so two heads never collide and the
    training step in the file name is not part of the identity.
    """
    tensors: dict[str, tuple[str, tuple[int, ...], str]] = {}
    for path in paths:
        for name, entry in _file_digests(Path(path)).items():
            if name in tensors:
                raise InvalidConfig(f"Tensor {name!r} is stored twice (again in {path})")
            tensors[name] = entry
    digest = hashlib.sha256()
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        digest.update(json.dumps([name, dtype, list(shape), data]).encode())
    return digest.hexdigest()


def _file_digests(path: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = _safetensors_digests(path) if path.suffix == ".safetensors" else _torch_digests(path)
    return _FILE_DIGESTS[key]


def _safetensors_digests(path: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """Digests read from the file's header and byte ranges (no tensor is materialised)."""
    with path.open("rb") as f:
        try:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        except (struct.error, UnicodeDecodeError, ValueError, MemoryError, OverflowError):
            raise InvalidConfig(f"{path} is damaged: not a safetensors file (unreadable header)") from None
        found = {}
        for name, info in sorted((k, v) for k, v in header.items() if k != "__metadata__"):
            begin, end = info["data_offsets"]
            f.seek(8 + size + begin)
            digest, left = hashlib.sha256(), end - begin
            while left > 0:
                block = f.read(min(_BLOCK, left))
                if not block:
                    raise InvalidConfig(f"{path} is truncated (tensor {name!r} ends past the end of the file)")
                digest.update(block)
                left -= len(block)
            found[name] = (str(info["dtype"]), tuple(info["shape"]), digest.hexdigest())
    return found


def _torch_digests(path: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """Digests of a torch state dict, its names prefixed by the file's kind (see :func:`weights_id`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise InvalidConfig(f"{path} is damaged: not a torch state dict ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidConfig(f"{path} is not a state dict of tensors")
    prefix = path.name.split("--", 1)[0] + "." if "--" in path.name else ""
    found = {}
    for name, tensor in state.items():
        t = tensor.detach().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        found[prefix + name] = (str(t.dtype).removeprefix("torch."), tuple(t.shape), hashlib.sha256(data).hexdigest())
    return found
