"""The one owner of an evaluation (or collection) run directory's layout.

```
<output_dir>/<run_id>/
  config.yaml          the resolved config          protocol.json   protocol constants + hash
  command.json         overrides + planned shards   jobs.json       every cluster submission
  records/<shard>.jsonl  one EpisodeRecord per line  summary.json    aggregate (written by merge)
  infra/<shard>.jsonl  infrastructure errors (unscored, retried): task_id, episode_index, reason, ...
  videos/task<T>_ep<E>.mp4                           submitit/       cluster job logs
  demos/               (sfbench collect) LIBERO-layout HDF5 files
  server.json          (server.enabled) where the run's policy server listens: host, port, job_id
  .start.lock          held while a command checks the run's identity and writes the start files
```
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.io import write_json_atomic
from sfbench.eval.records import RECORDS_DIR, EpisodeRecord, Located, append_line, dedupe, read_jsonl


@dataclass(frozen=True)
class RunDir:
    """Paths and files of one run directory."""

    path: Path

    @property
    def records_dir(self) -> Path:
        """Directory of the per-shard record files."""
        return self.path / RECORDS_DIR

    def record_file(self, shard_name: str) -> Path:
        """The JSONL records file of one shard."""
        return self.records_dir / f"{shard_name}.jsonl"

    def infra_file(self, shard_name: str) -> Path:
        """The JSONL log of one shard's infrastructure errors."""
        return self.path / "infra" / f"{shard_name}.jsonl"

    def add_infra_error(self, shard_name: str, entry: dict[str, Any]) -> None:
        """Log an infrastructure error (a dead worker, a simulator that cannot start) of one episode."""
        append_line(self.infra_file(shard_name), entry)

    def load_infra_errors(self) -> dict[tuple[int, int], list[str]]:
        """(task id, episode) -> the reasons of its infrastructure errors, oldest first."""
        errors: dict[tuple[int, int], list[str]] = {}
        for path in sorted((self.path / "infra").glob("*.jsonl")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    e = json.loads(line)
                    errors.setdefault((int(e["task_id"]), int(e["episode_index"])), []).append(str(e["reason"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a torn line of a crashed writer
        return errors

    @property
    def start_lock(self) -> Path:
        """Lock file held while a command checks the run's identity and writes its start files."""
        return self.path / ".start.lock"

    @property
    def server_file(self) -> Path:
        """``server.json``: the address of the run's policy server (a served run only)."""
        return self.path / "server.json"

    @property
    def summary(self) -> Path:
        """``summary.json``."""
        return self.path / "summary.json"

    @property
    def config(self) -> Path:
        """``config.yaml``."""
        return self.path / "config.yaml"

    @property
    def submitit(self) -> Path:
        """Default folder of the cluster job logs."""
        return self.path / "submitit"

    @property
    def demos(self) -> Path:
        """Demonstrations written by ``sfbench collect``."""
        return self.path / "demos"

    def video(self, task_id: int, episode: int) -> Path:
        """The MP4 of one episode."""
        return self.path / "videos" / f"task{task_id:03d}_ep{episode:04d}.mp4"

    def load_records(self) -> list[EpisodeRecord]:
        """The run's scored records: one per planned episode that has one (the first finished wins).

        Only the episodes of the run's plan (``command.json``) are scored; a record of any other
        episode is left out here and listed by :meth:`unplanned_records`. A run without a plan
        (collected demos) scores every record.
        """
        return [loc.record for loc in self.scored()]

    def unplanned_records(self) -> list[Located]:
        """Records (file, line) of episodes that are not in the run's plan: never scored."""
        planned = self.planned()
        return [loc for _, loc in sorted(dedupe(self._located()).items()) if not planned(loc.record)]

    def planned(self) -> Callable[[EpisodeRecord], bool]:
        """Whether a record is of a planned episode (suite, task, episode of ``command.json``).

        A run without ``command.json`` (collected demos) plans whatever it recorded.
        """
        if not self.has_command():
            return lambda rec: True
        command = self.load_command()
        suite = command.get("identity", {}).get("suite")
        pairs = {(s["task_id"], e) for s in command["shards"] for e in s["episodes"]}
        return lambda rec: (rec.task_id, rec.episode_index) in pairs and suite in (None, rec.suite)

    def _located(self) -> list[Located]:
        return [loc for path in sorted(self.records_dir.glob("*.jsonl")) for loc in read_jsonl(path)]

    def scored(self) -> list[Located]:
        """:meth:`load_records` with the file and line of each record."""
        planned = self.planned()
        return [loc for _, loc in sorted(dedupe(self._located()).items()) if planned(loc.record)]

    def write_start(self, config_yaml: str, protocol: dict[str, Any], command: dict[str, Any]) -> None:
        """Create the directory and write ``config.yaml``, ``protocol.json`` and ``command.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_yaml)
        write_json_atomic(self.path / "protocol.json", protocol)
        write_json_atomic(self.path / "command.json", command)

    def has_command(self) -> bool:
        """Whether the run was started (``command.json`` exists)."""
        return (self.path / "command.json").is_file()

    def load_command(self) -> dict[str, Any]:
        """``command.json``: the overrides that reproduce the run and its planned shards."""
        path = self.path / "command.json"
        if not path.exists():
            raise MissingAsset(f"No run at {self.path} (missing {path.name}); check run= and output_dir=")
        try:
            command = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidConfig(f"{path} is damaged (not JSON: {e}); restore it, or use another run_id") from None
        if not isinstance(command, dict) or not isinstance(command.get("shards", []), list):
            raise InvalidConfig(f"{path} is damaged (not a run's command: {str(command)[:60]}); "
                                "restore it, or use another run_id")
        return command

    def load_jobs(self) -> list[dict[str, Any]]:
        """Every submission of the run, oldest first (a resubmitted shard appears more than once)."""
        path = self.path / "jobs.json"
        return json.loads(path.read_text()) if path.exists() else []

    def add_jobs(self, jobs: list[dict[str, Any]]) -> None:
        """Append submissions to ``jobs.json`` (atomically)."""
        write_json_atomic(self.path / "jobs.json", self.load_jobs() + jobs)
