"""TinyVLA trained with Spatial Forcing (SF, ICLR 2026): the same 2-D-input model as ``tiny_vla``.

SF changes only training: the visual tokens' hidden states after trunk layer ``align_layer`` go
through a projector (``sfbench.train.align``) and are pulled towards a frozen 3-D teacher's
features by a cosine loss, L = L_action + align_alpha * L_align (paper Eq. 3-4). The projector and
teacher are dropped afterwards, so inference is exactly :class:`TinyVLAPolicy`'s; this module only
adds the alignment settings and a separate name, so scores of SF-trained checkpoints never mix
with plain ``tiny_vla`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sfbench.policies.tiny_vla import TinyVLAConfig, TinyVLAPolicy


@dataclass
class TinyVLASFConfig(TinyVLAConfig):
    """Configuration of :class:`TinyVLASFPolicy`: :class:`TinyVLAConfig` plus SF training settings.

    Args:
        align_layer: Trunk layer whose visual-token outputs are aligned (1-based, like HF
            ``hidden_states[k]``); None = 3/4 of ``layers`` rounded (24 of 32 in the paper).
        align_alpha: Weight of the alignment loss (paper: 0.5).
        align_use_pe: Add a 2-D sin-cos position embedding to the teacher's features before
            resampling (official ``--use_vggt_pe``).
        align_pe_scale: Scale of that position embedding (official: 0.1).
    """

    policy_name: ClassVar[str] = "tiny_vla_sf"
    runtime_fields: ClassVar[frozenset[str]] = TinyVLAConfig.runtime_fields | {
        "align_layer",
        "align_alpha",
        "align_use_pe",
        "align_pe_scale",
    }

    align_layer: int | None = None
    align_alpha: float = 0.5
    align_use_pe: bool = True
    align_pe_scale: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.align_layer is None:
            self.align_layer = max(1, round(self.layers * 3 / 4))
        if not 1 <= self.align_layer <= self.layers:
            raise ValueError(f"align_layer must be in [1, layers={self.layers}], got {self.align_layer}")
        if self.align_alpha < 0:
            raise ValueError(f"align_alpha must be >= 0, got {self.align_alpha}")
        if self.align_pe_scale < 0:
            raise ValueError(f"align_pe_scale must be >= 0, got {self.align_pe_scale}")


class TinyVLASFPolicy(TinyVLAPolicy):
    """:class:`TinyVLAPolicy` for checkpoints trained with Spatial Forcing (identical inference)."""

    name = "tiny_vla_sf"
    config_class = TinyVLASFConfig
