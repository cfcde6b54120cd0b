"""Launchers: where shards run. ``local`` runs them in this process, one after the other."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

from sfbench.errors import UnknownChoice
from sfbench.records import EpisodeRecord
from sfbench.runner import RunSpec, Shard, pending, run_shard

LAUNCHERS = ("local",)


def launch_local(spec: RunSpec, shards: list[Shard], *, progress: bool = True) -> None:
    """Run ``shards`` sequentially here, with one progress bar over the pending episodes."""
    total = sum(len(pending(spec, s)) for s in shards)
    bar = tqdm(total=total, desc=spec.run_id, unit="ep", disable=not progress, dynamic_ncols=True)
    wins = 0

    def on_episode(rec: EpisodeRecord) -> None:
        nonlocal wins
        wins += rec.success
        bar.update(1)
        bar.set_postfix(task=rec.task_id, success=f"{wins}/{bar.n}")

    with bar:
        for shard in shards:
            run_shard(spec, shard, on_episode)


def launch(name: str, spec: RunSpec, shards: list[Shard], *, progress: bool = True) -> None:
    """Dispatch to the launcher ``name``."""
    launchers: dict[str, Callable[..., None]] = {"local": launch_local}
    if name not in launchers:
        raise UnknownChoice("launcher", name, launchers)
    launchers[name](spec, shards, progress=progress)
