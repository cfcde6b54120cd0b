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

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity of the episode inside a run: (suite, task id, episode index)."""
        return (self.suite, self.task_id, self.episode_index)


def append_record(path: Path, record: EpisodeRecord) -> None:
    """Append one record as a single ``write`` on an ``O_APPEND`` descriptor, then fsync.

    One ``write`` call per line means concurrent writers never interleave inside a line and a
    crash can at worst leave one truncated last line, which :func:`load_records` skips.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(record), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_jsonl(path: Path) -> Iterable[EpisodeRecord]:
    names = set(EpisodeRecord.__dataclass_fields__)
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            log.warning("Skipping unreadable line %d of %s (interrupted write?)", n, path)
            continue
        yield EpisodeRecord(**{k: v for k, v in d.items() if k in names})


def load_jsonl_records(paths: Iterable[Path]) -> list[EpisodeRecord]:
    """Records of ``paths``, de-duplicated by episode key (the last written wins)."""
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
