"""TinyVLA: a small vision-language-action family that trains on a CPU (OpenVLA-OFT's design, scaled down).

``config`` (fields), ``model`` (the network), ``transforms`` (crops, tokens, geometry input),
``batch`` (training batches), ``checkpoint`` (the directory layout), ``adapter`` (the policy).
"""

from sfbench.policies.tiny_vla.adapter import TinyVLAPolicy
from sfbench.policies.tiny_vla.config import TinyVLAConfig
from sfbench.policies.tiny_vla.model import TinyVLA

__all__ = ["TinyVLA", "TinyVLAConfig", "TinyVLAPolicy"]
