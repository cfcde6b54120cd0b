"""Atomic file writes (a reader never sees a half-written file) and safe run-directory names."""

from __future__ import annotations

import json
import os
import re
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
