"""Episode records: one JSON line per finished episode, appended atomically, loaded for resume."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
RECORDS_DIR = "records"

@dataclass(frozen=True)
class EpisodeRecord:
    """Everything needed to audit one episode (DESIGN.md section 3)."""

    run_id: str
    policy: str
    checkpoint: str
    suite: str
    task_id: int
    task_name: str
    episode_index: int
    init_state_index: int
    seed: int
    protocol: str
    protocol_hash: str
    success: bool
    steps: int
    wall_s: float
    failure_reason: str | None = None
    video_path: str | None = None
    host: str = ""
    job_id: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    finished_at: str = ""
    policy_info: dict = field(default_factory=dict)  # e.g. the server and its metadata (policy=remote)

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity of the episode inside a run: (suite, task id, episode index)."""
        return (self.suite, self.task_id, self.episode_index)


def append_record(path: Path, record: EpisodeRecord) -> None:
    """Append one record (see :func:`append_line`)."""
    append_line(path, asdict(record))


def append_line(path: Path, obj: dict) -> None:
    """Append ``obj`` as one JSON line in a single ``write`` on an ``O_APPEND`` descriptor, then fsync.

    One ``write`` call per line means concurrent writers never interleave inside a line and a
    crash can at worst leave one truncated last line, which the readers skip. A file whose tail
    is such a torn line gets a newline first, so the new line is not glued to (and lost with) it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(obj, sort_keys=True) + "\n").encode()
    if _torn_tail(path):
        line = b"\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _torn_tail(path: Path) -> bool:
    """Whether ``path`` is non-empty and does not end with a newline."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _read_jsonl(path: Path) -> Iterable[EpisodeRecord]:
    """The records of one file; a line that is not a record is reported (file, line) and skipped."""
    names = set(EpisodeRecord.__dataclass_fields__)
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw.decode("utf-8"))
            rec = EpisodeRecord(**{k: v for k, v in d.items() if k in names})
            _check_types(rec)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as e:
            log.warning("Skipping line %d of %s: not an episode record (%s: %s)", n, path, type(e).__name__, e)
            continue
        yield rec


_TYPES = {"run_id": str, "policy": str, "checkpoint": str, "suite": str, "task_id": int, "episode_index": int,
          "protocol": str, "protocol_hash": str, "success": bool, "steps": int, "finished_at": str}


def _check_types(rec: EpisodeRecord) -> None:
    """Raise ``TypeError`` when a field that scores and keys depend on has the wrong type."""
    for name, kind in _TYPES.items():
        value = getattr(rec, name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name}={value!r} is not {kind.__name__}")


def load_jsonl_records(paths: Iterable[Path]) -> list[EpisodeRecord]:
    """Records of ``paths``, de-duplicated by episode key (the first finished wins)."""
    by_key: dict[tuple, EpisodeRecord] = {}
    for path in paths:
        for rec in _read_jsonl(path):
            if rec.key in by_key and by_key[rec.key].finished_at > rec.finished_at:
                continue
            by_key[rec.key] = rec
    return sorted(by_key.values(), key=lambda r: r.key)


def load_records(run_dir: Path) -> list[EpisodeRecord]:
    """All records of the run at ``run_dir`` (see :class:`sfbench.eval.rundir.RunDir`)."""
    from sfbench.eval.rundir import RunDir

    return RunDir(run_dir).load_records()
