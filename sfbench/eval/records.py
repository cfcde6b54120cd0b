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


def sfbench_versions(records: list[EpisodeRecord]) -> str:
    """The sfbench versions that recorded ``records`` (comma-separated, sorted; "unknown" when unrecorded)."""
    return ", ".join(sorted({r.versions.get("sfbench", "unknown") for r in records}))


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


@dataclass(frozen=True)
class Located:
    """A record and where it was read: its file and 1-based line."""

    record: EpisodeRecord
    path: Path
    line: int

    @property
    def where(self) -> str:
        """``<file>:<line>``."""
        return f"{self.path}:{self.line}"


# (path, line) of the bad lines already warned about: a command reads a run's records several times
# (resume, progress, summary) and each bad line is reported once per process, not once per read.
_WARNED: set[tuple[str, int]] = set()


def _warn_once(key: tuple[str, int], message: str, *args: object) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message, *args)


def read_jsonl(path: Path) -> list[Located]:
    """Every record of one file in file order; a line that is not a record is warned (file, line) and skipped."""
    names = set(EpisodeRecord.__dataclass_fields__)
    found = []
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw.decode("utf-8"))
            rec = EpisodeRecord(**{k: v for k, v in d.items() if k in names})
            _check_types(rec)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as e:
            _warn_once((str(path), n), "Skipping %s:%d: not an episode record (%s: %s)", path, n,
                       type(e).__name__, e)
            continue
        found.append(Located(rec, path, n))
    return found


_TYPES = {"run_id": str, "policy": str, "checkpoint": str, "suite": str, "task_id": int, "episode_index": int,
          "protocol": str, "protocol_hash": str, "success": bool, "steps": int, "finished_at": str}


def _check_types(rec: EpisodeRecord) -> None:
    """Raise ``TypeError`` when a field that scores and keys depend on has the wrong type."""
    for name, kind in _TYPES.items():
        value = getattr(rec, name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name}={value!r} is not {kind.__name__}")


def first_finished(a: Located, b: Located) -> Located:
    """The one record of an episode recorded twice: the first finished (then the first file and line).

    This is sfbench's single rule for duplicates (merge, summary, leaderboard, curves, compare all
    read records through :func:`dedupe`): the first attempt is the score, so rerunning an episode can
    never pick the better of two outcomes.
    """
    return min(a, b, key=lambda x: (x.record.finished_at, str(x.path), x.line))


def dedupe(located: Iterable[Located]) -> dict[tuple, Located]:
    """Episode key -> its first finished record; duplicates that disagree on the outcome are warned."""
    by_key: dict[tuple, Located] = {}
    for loc in located:
        kept = by_key.get(loc.record.key)
        if kept is None:
            by_key[loc.record.key] = loc
            continue
        first = by_key[loc.record.key] = first_finished(kept, loc)
        other = loc if first is kept else kept
        if (first.record.success, first.record.failure_reason) != (other.record.success, other.record.failure_reason):
            _warn_once((other.where, -1), "Episode %s is recorded twice with different outcomes (%s: success=%s, "
                       "%s: success=%s); the first finished (%s) is scored", loc.record.key, first.where,
                       first.record.success, other.where, other.record.success, first.where)
    return by_key


def load_jsonl_records(paths: Iterable[Path]) -> list[EpisodeRecord]:
    """Records of ``paths``, one per episode key (:func:`first_finished`), sorted by key."""
    located = [loc for path in paths for loc in read_jsonl(path)]
    return [loc.record for _, loc in sorted(dedupe(located).items())]


def load_records(run_dir: Path) -> list[EpisodeRecord]:
    """All records of the run at ``run_dir`` (see :class:`sfbench.eval.rundir.RunDir`)."""
    from sfbench.eval.rundir import RunDir

    return RunDir(run_dir).load_records()
