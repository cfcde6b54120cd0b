"""``policy=openvla_3d``: OpenVLA-OFT plus 3D-CAVLA's PointNet depth tokens (a 3D-input VLA)."""

from sfbench.policies.openvla_3d.adapter import OpenVLA3DConfig, OpenVLA3DPolicy
from sfbench.policies.openvla_3d.model import DEPTH_PREFIXES, OpenVLA3D
from sfbench.policies.openvla_3d.pointnet import PointNetfeat, PointNetSpec, point_clouds

__all__ = ["DEPTH_PREFIXES", "OpenVLA3D", "OpenVLA3DConfig", "OpenVLA3DPolicy", "PointNetSpec", "PointNetfeat",
           "point_clouds"]
