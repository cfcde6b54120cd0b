"""openvla_3d (3D-CAVLA): point clouds against the simulator, PointNet, checkpoint round trip, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sfbench.core.depth_noise import DepthNoise
from sfbench.core.errors import InvalidConfig, MissingAsset
from sfbench.policies.openvla_3d import OpenVLA3DConfig, OpenVLA3DPolicy, PointNetfeat, PointNetSpec, point_clouds
from sfbench.policies.openvla_oft.tiny import write_tiny_checkpoint
from sfbench.train.trainer import TrainJob
from tests.train.test_demos import write_file

SMALL = {"pointnet_widths": [8, 16, 32], "pointnet_stn_fc": [16, 8]}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("oft3d") / "base", seed=2)


def test_masked_max_pool_ignores_holes_and_a_view_without_points_is_zero():
    torch.manual_seed(0)
    net = PointNetfeat(PointNetSpec((8, 16, 32), (16, 8)), 12).eval()
    points = torch.randn(2, 3, 50)
    valid = torch.ones(2, 50, dtype=torch.bool)
    valid[0, 25:] = False
    moved = points.clone()
    moved[0, :, 25:] = 100.0  # what a hole holds must not matter
    assert torch.allclose(net(points, valid), net(moved, valid))
    assert torch.equal(net(points, torch.zeros(2, 50, dtype=torch.bool)), net.proj(torch.zeros(2, 32)))


def test_point_clouds_use_the_given_intrinsics_and_mark_invalid_depth():
    depth = torch.full((1, 2, 4, 6), 2.0)
    depth[0, 1, 0, 0] = float("nan")
    depth[0, 1, 0, 1] = 0.0
    k = torch.tensor([[100.0, 0, 3], [0, 100.0, 2], [0, 0, 1]]).expand(1, 2, 3, 3)
    points, valid = point_clouds(depth, k, stride=1)
    assert points.shape == (1, 2, 3, 24) and valid[0, 1, :2].tolist() == [False, False] and valid[0, 0].all()
    torch.testing.assert_close(points[0, 0, :, 0], torch.tensor([(0.5 - 3) * 2 / 100, (0.5 - 2) * 2 / 100, 2.0]))
    with pytest.raises(InvalidConfig, match="depth must be"):
        point_clouds(depth[0], k[0])


@pytest.mark.sim
def test_an_objects_pixel_lands_on_its_3d_position():
    from sfbench.config.tree import load_protocol, load_suite
    from sfbench.envs import make_env

    env = make_env(load_suite("libero_spatial"), 0, load_protocol("libero_oft"), views=("agentview",), depth=True,
                   privileged=True)
    obs, _ = env.reset(options={"init_state_index": 0})
    env.close()
    name = "plate_1"  # flat: its visible surface is within 2 cm of its body origin
    world = obs["privileged"][f"{name}_pos"].astype(np.float64)
    k, pose = obs["intrinsics"]["agentview"].astype(np.float64), obs["extrinsics"]["agentview"].astype(np.float64)
    cam = np.linalg.inv(pose) @ np.append(world, 1.0)
    u, v = (k @ cam[:3])[:2] / cam[2]
    depth = torch.from_numpy(obs["depth"]["agentview"])[None, None].double()
    points, _ = point_clouds(depth, torch.from_numpy(k)[None, None])
    size = depth.shape[-1]
    p = points[0, 0, :, int(v) * size + int(u)].numpy()
    back = (pose @ np.append(p, 1.0))[:3]
    assert np.linalg.norm(back - world) < 0.03, f"{name}: pixel ({u:.0f}, {v:.0f}) -> {back}, object at {world}"


def test_depth_noise_is_deterministic_and_makes_holes():
    noise = DepthNoise.from_dict({"gaussian_std_m": 0.01, "dropout_p": 0.1, "holes": 2, "hole_px": 4})
    depth = np.full((32, 32), 1.5, np.float32)
    a, b = noise.apply(depth, (7, 0, 3, 0)), noise.apply(depth, (7, 0, 3, 0))
    assert np.array_equal(a, b) and not np.array_equal(a, noise.apply(depth, (7, 0, 4, 0)))
    assert 0.1 < (a == 0).mean() < 0.35 and abs(a[a > 0].std() - 0.01) < 0.003
    with pytest.raises(InvalidConfig, match=r"depth_noise.dropout_p=1.5 \(must be a number in \[0, 1\)\)"):
        DepthNoise.from_dict({"dropout_p": 1.5})


def test_train_save_load_round_trip_and_a_checkpoint_without_depth_projectors(tmp_path, base):
    write_file(tmp_path / "data" / "a_demo.hdf5", 2, t=6)
    job = TrainJob(tmp_path / "run", {"name": "openvla_3d", "base": str(base), "lora_rank": 4, **SMALL},
                   {"path": str(tmp_path / "data")}, {"steps": 2, "batch_size": 2, "save_every": 2, "progress": False,
                                                      "num_threads": 2}, {"name": "geometry"})
    final = job()
    names = {p.name for p in final.iterdir()}
    assert {"depth_projector1--2_checkpoint.pt", "depth_projector2--2_checkpoint.pt"} <= names
    assert json.loads((final / "config.json").read_text())["sfbench_depth_spec"]["widths"] == [8, 16, 32]
    policy = OpenVLA3DPolicy(OpenVLA3DConfig(checkpoint=str(final), device="cpu"))
    saved = torch.load(final / "depth_projector2--2_checkpoint.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in policy.model.depth_projectors[1].state_dict().items())
    from sfbench.core.task import TaskSpec

    policy.reset(TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="do it", action_dim=7))
    rng = np.random.default_rng(0)
    k = np.array([[-100, 0, 64], [0, 100, 64], [0, 0, 1]], np.float32)
    obs = {"agentview": np.zeros((128, 128, 3), np.uint8), "wrist": np.zeros((128, 128, 3), np.uint8),
           "proprio": np.zeros(8), "instruction": "do it",
           "depth": {v: rng.uniform(0.5, 2, (128, 128)).astype(np.float32) for v in ("agentview", "wrist")},
           "intrinsics": {"agentview": k, "wrist": k}}
    chunk = policy.act(obs)
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()
    obs["depth"]["wrist"] = obs["depth"]["wrist"] + 1.0
    assert not np.allclose(policy.act(obs), chunk), "the depth tokens reach the actions"
    with pytest.raises(InvalidConfig, match="depth maps must be"):
        policy.act({**obs, "depth": {"agentview": obs["depth"]["agentview"], "wrist": np.zeros((4, 4))}})
    with pytest.raises(MissingAsset, match="no depth_projector1--\\*checkpoint.pt file"):
        OpenVLA3DPolicy(OpenVLA3DConfig(checkpoint=str(base), device="cpu"))
