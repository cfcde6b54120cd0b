"""Finished or running ``sfbench train`` runs: their config, saved checkpoints and training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
from omegaconf import OmegaConf

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.train.data.dataset import find_files, in_training_split, select_demos, subset_size
from sfbench.train.data.formats import detect_format, load_demos
from sfbench.train.rundir import CHECKPOINTS, CONFIG, complete_checkpoints
from sfbench.train.trainer import RUNTIME_SETTINGS


@dataclass(frozen=True)
class TrainingData:
    """What a run was trained on: the demos' suite, tasks and protocol, and demos used per task."""

    suite: str
    task_ids: tuple[int, ...]
    protocol_hash: str
    demos_per_task: tuple[int, ...]  # in ``task_ids`` order


@dataclass(frozen=True)
class TrainRun:
    """One training run directory (``<train_dir>/<run_id>``)."""

    run_id: str
    run_dir: Path
    config: dict[str, Any]
    checkpoints: dict[int, Path]  # step -> checkpoint directory

    @property
    def policy(self) -> dict[str, Any]:
        """The run's ``policy`` section (architecture of every checkpoint)."""
        return dict(self.config["policy"])

    def checkpoint(self, step: int) -> Path:
        """The checkpoint saved at ``step``."""
        if step not in self.checkpoints:
            raise InvalidConfig(f"Train run {self.run_id} has no checkpoint at step {step}; "
                                f"saved steps: {sorted(self.checkpoints)}")
        return self.checkpoints[step]


# Settings that do not define a curve: seeds are pooled, the rest does not change what is trained.
_NOT_IN_LABEL = {"train.seed", "run_id", "output_dir", "teacher.memory_gb", *(f"train.{k}" for k in RUNTIME_SETTINGS)}
_DATA_SIZE = {"data.fraction", "data.demos_per_task"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def curve_labels(runs: list[TrainRun], *, data_is_x: bool) -> list[str]:
    """One label per run: its policy name, plus the settings that tell apart runs of one policy.

    Runs that differ only in their seed share a label (and are pooled); with ``data_is_x`` the
    amount of data is the curve's x, not part of its label.
    """
    ignore = _NOT_IN_LABEL | (_DATA_SIZE if data_is_x else set())
    flat = [{k: v for k, v in _flat(r.config).items() if k not in ignore
             and not k.startswith(("launcher.", "train.eval."))}
            for r in runs]
    labels = []
    for f in flat:
        same_policy = [g for g in flat if g["policy.name"] == f["policy.name"]]
        differing = sorted(k for k in f if any(g.get(k) != f[k] for g in same_policy))
        labels.append(" ".join([str(f["policy.name"]), *(f"{k.split('.')[-1]}={f[k]}" for k in differing)]))
    return labels


def load_train_run(train_dir: Path, run_id: str) -> TrainRun:
    """Read a run's ``config.yaml`` and its complete checkpoints; a clear error when either is absent."""
    run_dir = train_dir / run_id
    if not (run_dir / CONFIG).is_file():
        known = sorted(p.name for p in train_dir.glob("*/") if (p / CONFIG).is_file())
        raise MissingAsset(f"No train run '{run_id}' under {train_dir}/ (runs there: {', '.join(known) or 'none'})")
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints:
        raise MissingAsset(f"Train run '{run_id}' has no saved checkpoints under {run_dir / CHECKPOINTS}/ "
                           "(train it first: the same sfbench train command resumes it)")
    config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG))
    return TrainRun(run_id, run_dir, config, checkpoints)


def training_data(run: TrainRun) -> TrainingData:
    """Suite, task ids, protocol and demos per task of a run's training data, in any format the trainer reads.

    LIBERO HDF5 files: from their attributes only (no image is read). RLDS and LeRobot datasets keep no suite,
    task id or protocol: their episodes are read as the trainer reads them (frames stay encoded) and matched to
    suite tasks by instruction; their protocol is ``unknown``, as for HDF5 files without the attribute.
    """
    data = run.config["data"]
    if detect_format(data["path"]) != "hdf5":
        return _released_training_data(run, data)
    below = data.get("init_states_below")
    tasks, counts, suites, protocols = [], [], set(), set()
    for path in find_files(data["path"]):
        with h5py.File(path, "r") as f:
            attrs, demos = f["data"].attrs, f["data"].values()
            starts = [int(g.attrs.get("init_state_index", -1)) for g in demos]
            suites.add(str(attrs.get("suite", "unknown")))
            protocols.add(str(attrs.get("protocol_hash", "unknown")))
            tasks.append(int(attrs.get("task_id", -1)))
        available = sum(in_training_split(s, below) for s in starts)
        counts.append(subset_size(available, data.get("fraction", 1.0), data.get("demos_per_task")) if available else 0)
    if len(suites) > 1 or len(protocols) > 1:
        raise InvalidConfig(f"Train run {run.run_id} mixes suites {sorted(suites)} / protocols {sorted(protocols)}")
    order = sorted(range(len(tasks)), key=tasks.__getitem__)
    return TrainingData(suites.pop(), tuple(tasks[i] for i in order), protocols.pop(),
                        tuple(counts[i] for i in order))


def _released_training_data(run: TrainRun, data: dict[str, Any]) -> TrainingData:
    """:func:`training_data` of an RLDS or LeRobot dataset: the trainer's own demo selection, counted per task."""
    demos = load_demos(data["path"], suite=data.get("suite"), keys=data.get("keys"))
    demos = [d for d in demos if in_training_split(d.init_state, data.get("init_states_below"))]
    if not demos:
        raise InvalidConfig(f"Train run {run.run_id}: no demo of {data['path']} is in its training split "
                            f"(data.init_states_below={data.get('init_states_below')})")
    chosen = select_demos(demos, data.get("fraction", 1.0), data.get("demos_per_task"), data.get("subset_seed", 0))
    suites = {d.group.split("/")[0] if d.task_id >= 0 else "unknown" for d in chosen}
    if len(suites) > 1:
        raise InvalidConfig(f"Train run {run.run_id} mixes suites {sorted(suites)} (set data.suite)")
    counts: dict[int, int] = {}
    for d in chosen:
        counts[d.task_id] = counts.get(d.task_id, 0) + 1
    tasks = sorted(counts)
    return TrainingData(suites.pop(), tuple(tasks), "unknown", tuple(counts[t] for t in tasks))


def check_comparable(runs: list[TrainRun]) -> dict[str, TrainingData]:
    """Refuse runs trained on different suites, task sets or protocols; return run id -> its data."""
    data = {run.run_id: training_data(run) for run in runs}
    first, reference = runs[0], data[runs[0].run_id]
    for run in runs[1:]:
        other = data[run.run_id]
        for what, a, b in (("suite", reference.suite, other.suite),
                           ("task set", list(reference.task_ids), list(other.task_ids)),
                           ("protocol (hash)", reference.protocol_hash, other.protocol_hash)):
            if a != b:
                raise InvalidConfig(f"Runs in one curve must share their training data's {what}: "
                                    f"{first.run_id} has {a}, {run.run_id} has {b}")
    return data
