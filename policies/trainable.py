"""The trainable-policy contract: what the trainer, Spatial Forcing, the probe and curves call.

A family implements these hooks once (``policies/<family>/``); the generic layers never import a
family. Spatial Forcing needs only :meth:`TrainablePolicy.training_step` with ``hidden_layer`` and
the visual-token grid; the probe needs :meth:`TrainablePolicy.visual_hidden`.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.core.images import Box
from sfbench.policies.base import Policy

if TYPE_CHECKING:
    import torch



@dataclass
class TrainingBatch:
    """Model inputs and targets of one step, and each view's crop box (``boxes[sample][view]``)."""

    tensors: dict[str, torch.Tensor]
    boxes: list[list[Box]] = field(default_factory=list)


@dataclass
class StepOutput:
    """A training forward pass: the policy's own loss, its metrics and, if asked, visual hidden states.

    ``visual_hidden`` is (B, V * Hp * Wp, D) after the requested layer, flattened view-major then
    row-major over ``grid`` = (V, Hp, Wp).
    """

    loss: torch.Tensor
    metrics: dict[str, float]
    visual_hidden: torch.Tensor | None = None
    grid: tuple[int, int, int] | None = None


class TrainablePolicy(Policy, abstract=True):
    """A :class:`Policy` family that sfbench can train, resume, align and probe."""

    model: torch.nn.Module
    # Normalisation statistics of the training data ({"action": {"q01", "q99"}, "proprio": ...}),
    # set by the trainer before the first step and saved with every checkpoint.
    stats: dict[str, Any]

    @classmethod
    @abc.abstractmethod
    def for_training(cls, config: Any) -> TrainablePolicy:
        """A randomly initialised policy of ``config``'s architecture (torch's global RNG draws the weights)."""

    @classmethod
    def check_training(cls, config: Any) -> None:
        """Check, before a run directory is created, what training needs beyond ``config`` itself."""
        return None

    @property
    @abc.abstractmethod
    def views(self) -> tuple[str, ...]:
        """RGB views the model reads, in token order (the dataset stacks them in this order)."""

    @property
    @abc.abstractmethod
    def chunk_size(self) -> int:
        """Actions predicted per query (the dataset's action-chunk length)."""

    @property
    @abc.abstractmethod
    def num_layers(self) -> int:
        """Layers whose hidden states can be read (``hidden_layer`` in 0..num_layers)."""

    @property
    @abc.abstractmethod
    def hidden_dim(self) -> int:
        """Width D of the hidden states."""

    @property
    @abc.abstractmethod
    def crop_area(self) -> float:
        """Area fraction of the policy-side centre crop (depth probe targets are cropped alike)."""

    @abc.abstractmethod
    def training_batch(self, items: list[dict[str, Any]], generator: torch.Generator, augment: Any) -> TrainingBatch:
        """Stack dataset items into model inputs; ``augment`` (or None) holds the augmentation settings."""

    @abc.abstractmethod
    def training_step(self, batch: TrainingBatch, *, hidden_layer: int | None = None) -> StepOutput:
        """Forward pass and action loss (with gradients) on a batch already on the model's device."""

    @abc.abstractmethod
    def visual_hidden(self, obs_batch: list[dict[str, Any]], layer: int) -> torch.Tensor:
        """Visual-token hidden states (B, V, D, Hp, Wp) after ``layer`` for raw env observations."""

    @abc.abstractmethod
    def reinitialized(self, seed: int) -> TrainablePolicy:
        """A copy with freshly initialised weights (the probe's untrained control)."""

    @abc.abstractmethod
    def save(self, path: Path, *, step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint directory in the family's own layout (atomically)."""

    @abc.abstractmethod
    def load_weights(self, path: Path) -> dict[str, Any]:
        """Load a checkpoint's weights into this policy (resume); returns its trainer state."""


# Every trainable family's checkpoint directory has this file, with ``family`` and ``name`` keys
# (the policy config that evaluates it) beside the family's own fields.
CHECKPOINT_CONFIG = "config.json"


def checkpoint_policy_config(checkpoint: str | Path) -> dict[str, Any]:
    """The ``policy`` config group that loads ``checkpoint`` (family and fields from its config.json)."""
    path = Path(checkpoint) / CHECKPOINT_CONFIG
    if not path.is_file():
        raise MissingAsset(f"Not a checkpoint directory (no {CHECKPOINT_CONFIG}): {checkpoint}")
    try:
        fields = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidConfig(f"Corrupt checkpoint file '{path}': {e}") from None
    if not isinstance(fields, dict) or "family" not in fields or "name" not in fields:
        raise InvalidConfig(f"'{path}' names no policy family and name (not an sfbench checkpoint?)")
    from sfbench.policies import policy_class  # the family's own fields; other keys belong to its format

    own = set(policy_class(fields["family"]).config_class.__dataclass_fields__) | {"family", "name"}
    return {**{k: v for k, v in fields.items() if k in own}, "checkpoint": str(checkpoint)}
