"""Atomic file writes (a reader never sees a half-written file), content hashes, safe output paths."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from sfbench.core.errors import InvalidConfig


def write_json_atomic(path: Path, obj: object) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def check_run_id(run_id: str) -> str:
    """A run id is one path component: letters, digits, ``.``, ``_``, ``-`` (not ``.`` or ``..``)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id) or run_id in (".", ".."):
        raise InvalidConfig(f"run_id={run_id!r} must be one path component (letters, digits, '.', '_', '-')")
    return run_id


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_dir(path: Path, key: str = "output_dir") -> None:
    """Refuse, before anything is created, an output path that is a file or cannot be written."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidConfig(f"{key}={path} cannot be created: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidConfig(f"{key}={path} is not writable (no write permission on {existing})")
    try:  # permission bits do not tell everything (root under /proc, a read-only mount): try, and leave nothing
        os.rmdir(tempfile.mkdtemp(prefix=".sfbench-check-", dir=existing))
    except OSError as e:
        raise InvalidConfig(f"{key}={path} cannot be created: {existing} refuses new folders "
                            f"({e.strerror or type(e).__name__})") from None
