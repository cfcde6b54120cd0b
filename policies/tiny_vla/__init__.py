"""TinyVLA: a small vision-language-action family that trains on a CPU (OpenVLA-OFT's design, scaled down).

``config`` (fields), ``model`` (the network), ``transforms`` (crops, tokens, geometry input),
``batch`` (training batches), ``checkpoint`` (the directory layout), ``adapter`` (the policy).
"""

from sfbench.core.images import center_box, crop_intrinsics, crop_resize
from sfbench.policies.tiny_vla.adapter import TinyVLAPolicy
from sfbench.policies.tiny_vla.checkpoint import load_checkpoint, save_checkpoint
from sfbench.policies.tiny_vla.config import TinyVLAConfig
from sfbench.policies.tiny_vla.model import TinyVLA
from sfbench.policies.tiny_vla.transforms import tokenize

__all__ = ["TinyVLA", "TinyVLAConfig", "TinyVLAPolicy", "center_box", "crop_intrinsics", "crop_resize",
           "load_checkpoint", "save_checkpoint", "tokenize"]
