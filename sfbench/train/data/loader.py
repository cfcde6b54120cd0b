"""Each training step's samples, loaded ahead by DataLoader worker processes (``train.num_workers``).

A step's sample indices are a pure function of the seed and the step (:func:`step_indices`), so a resumed
run draws the same batches, and so do runs with any number of workers. The loader only decides *where* the
samples are read: ``num_workers=0`` reads them in the training process, ``N > 0`` in N worker processes that
decode the frames (JPEG/PNG bytes, video segments) while the step runs, a few steps ahead. Everything random
about a sample (crop offsets, colour jitter) is drawn afterwards, in the training process, from the step's
generator, so it does not depend on the workers either.

Workers see the dataset as it was when the loader started: forked (Linux), or pickled (spawn), where a
memory-mapped RLDS shard travels as its path (:class:`~sfbench.train.data.frames.MappedFile`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

# Batches each worker prepares ahead of the step that needs them (torch's default).
PREFETCH_PER_WORKER = 2


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of ``step``: its sample indices first, then its augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def step_indices(gen: torch.Generator, n_samples: int, batch_size: int) -> list[int]:
    """``batch_size`` sample indices drawn with replacement (consumes ``gen`` the same way every time)."""
    return torch.randint(0, n_samples, (batch_size,), generator=gen).tolist()


class StepBatches(torch.utils.data.Sampler):
    """The DataLoader's batch sampler: the indices of each step in ``steps``, in order."""

    def __init__(self, steps: range, indices: Callable[[int], list[int]]):
        super().__init__()
        self.steps, self.indices = steps, indices

    def __iter__(self) -> Iterator[list[int]]:
        return (self.indices(step) for step in self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def as_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DataLoader's collate function: a step's dataset items as they are (the policy builds the batch)."""
    return items


def step_batches(dataset: Sequence[dict[str, Any]], steps: range, indices: Callable[[int], list[int]],
                 num_workers: int) -> Iterator[list[dict[str, Any]]]:
    """The dataset items of every step in ``steps`` (``indices(step)`` picks them), read by ``num_workers``.

    Args:
        dataset: A map-style dataset (``len``, ``[i]``).
        steps: The steps to load, in order.
        indices: Step -> the indices of its samples on this process.
        num_workers: Worker processes (0: read in this process, when each step asks).
    """
    ahead = {"prefetch_factor": PREFETCH_PER_WORKER} if num_workers else {}
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=StepBatches(steps, indices), num_workers=num_workers,
                                         collate_fn=as_list, **ahead)
    return iter(loader)
