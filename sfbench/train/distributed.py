"""Data-parallel training over ``torch.distributed``: one process per GPU (or CPU process on gloo).

Processes are started by ``torchrun`` (locally) or by submitit on SLURM (``launcher.tasks_per_node``,
which exports the same ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` variables). Every rank draws the
same global batch indices and trains on its own contiguous slice; gradients are averaged after
each backward pass, so a step equals a one-process step on the whole batch (up to float
reduction order). Rank 0 alone writes metrics and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sfbench.core.errors import InvalidConfig


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` training processes."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files."""
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        """Refuse a global batch that the ranks cannot share equally."""
        if batch_size % self.size:
            raise InvalidConfig(f"train.batch_size={batch_size} is not divisible by the {self.size} training "
                                "processes (WORLD_SIZE)")

    def local_slice(self, indices: list[int]) -> list[int]:
        """This rank's contiguous share of the global batch ``indices``."""
        self.check_batch(len(indices))
        share = len(indices) // self.size
        return indices[self.rank * share : (self.rank + 1) * share]

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average every gradient over the ranks (no-op for one process)."""
        if self.size == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.size

    def average(self, metrics: dict[str, float]) -> dict[str, float]:
        """``metrics`` averaged over the ranks (what a one-process step on the whole batch reports)."""
        if self.size == 1:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        return dict(zip(keys, (values / self.size).tolist(), strict=True))

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
        if self.size > 1:
            dist.barrier()


def init_world(device: torch.device) -> World:
    """Join the process group described by the environment (``WORLD_SIZE`` > 1), else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())
