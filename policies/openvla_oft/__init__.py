"""OpenVLA-OFT (and Spatial Forcing checkpoints, which load unchanged) from the released layout.

``constants`` (token ids, chunking, Llama defaults), ``vit`` (timm-named towers in plain torch),
``model`` (the network), ``checkpoint`` (the directory layout), ``processing`` (images, prompt,
statistics), ``adapter`` (the policy), ``tiny`` (tiny random checkpoints in the same layout).
"""

from sfbench.policies.openvla_oft.adapter import OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.checkpoint import load_model, read_checkpoint, write_checkpoint
from sfbench.policies.openvla_oft.model import OpenVLAOFT

__all__ = ["OpenVLAOFT", "OpenVLAOFTConfig", "OpenVLAOFTPolicy", "load_model", "read_checkpoint",
           "write_checkpoint"]
