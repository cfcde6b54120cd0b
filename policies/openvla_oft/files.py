"""Reading a checkpoint's files so that a damaged one is one error line naming it, before anything is built.

A checkpoint copied half-way or edited by hand fails here with :class:`DamagedCheckpoint`: a JSON file
that does not parse, a safetensors shard shorter than its header says, a ``.pt`` that is not a readable
torch archive, or a directory where a file should be. The checks read headers only (the shards' JSON
headers, the ``.pt`` archives' central directories and pickles, memory-mapped), not the weights.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from sfbench.core.errors import DamagedCheckpoint

HEADER_BYTES = 8  # safetensors: little-endian u64 length of the JSON header, then the header, then the data


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def check_file(path: Path) -> Path:
    """``path`` itself, if it is a file rather than a directory (or anything else)."""
    if path.exists() and not path.is_file():
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} is a directory, not a file")
    return path


def read_json(path: Path) -> Any:
    """The parsed content of a checkpoint's JSON file."""
    try:
        return json.loads(check_file(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} is not valid JSON ({_one_line(e)})") from None


def check_safetensors(path: Path) -> None:
    """The shard's header parses and its tensors' byte ranges lie inside the file (a truncation fails)."""
    size = check_file(path).stat().st_size
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
        length = int.from_bytes(head, "little") if len(head) == HEADER_BYTES else -1
        if length < 0 or length > size - HEADER_BYTES:
            raise DamagedCheckpoint(f"Damaged checkpoint: {path} is truncated or not a safetensors file "
                                    f"({size} bytes)")
        raw = f.read(length)
    try:
        header = json.loads(raw)
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, IndexError, AttributeError):
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} has no valid safetensors header") from None
    data = size - HEADER_BYTES - length
    if end > data:
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} is truncated ({data} bytes of tensor data, its header "
                                f"needs {end})")


def load_torch(path: Path, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """A ``.pt`` state dict (``weights_only``); ``mmap`` maps a zip archive's storages instead of reading them."""
    check_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as e:  # noqa: BLE001 -- the unpickler raises whatever the bytes provoke (KeyError, struct.error...)
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} is not a readable torch file ({_one_line(e)})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} holds a {type(state).__name__}, not a state dict")
    return state


def read_shard(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors shard."""
    try:
        with safe_open(check_file(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise DamagedCheckpoint(f"Damaged checkpoint: {path} cannot be read ({_one_line(e)})") from None
