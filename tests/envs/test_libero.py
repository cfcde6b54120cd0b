"""The LIBERO env against the real simulator (marker ``sim``)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sfbench.config.tree import load_protocol, load_suite
from sfbench.core.errors import UnknownChoice
from sfbench.envs import gym_id, make_env

pytestmark = pytest.mark.sim
PROTOCOL = load_protocol("libero_oft")


@pytest.fixture(scope="module")
def geometry_env():
    env = make_env(load_suite("libero_spatial"), 0, PROTOCOL, views=("agentview",), depth=True, privileged=True)
    yield env
    env.close()


def test_check_env_passes_on_a_rendering_env(geometry_env):
    check_env(geometry_env, skip_render_check=True)


def test_observations_follow_the_contract(geometry_env):
    obs, info = geometry_env.reset(options={"init_state_index": 3})
    assert info == {"is_success": False, "init_state_index": 3}
    assert obs["agentview"].shape == (256, 256, 3) and obs["agentview"].dtype == np.uint8
    assert obs["proprio"].shape == (8,) and obs["instruction"].startswith("pick up the black bowl")
    assert obs["depth"]["agentview"].shape == (256, 256)
    assert geometry_env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = geometry_env.step(np.zeros(7, dtype=np.float32))
    assert "is_success" in info and not terminated and not truncated


@pytest.mark.parametrize("name", ["akita_black_bowl_1", "plate_1", "cookies_1"])
def test_depth_and_camera_matrices_agree_with_object_poses(geometry_env, name):
    """Projecting an object's simulator position lands on a pixel whose depth is the object's."""
    obs, _ = geometry_env.reset(options={"init_state_index": 0})
    k, cam_to_world = obs["intrinsics"]["agentview"], obs["extrinsics"]["agentview"]
    p_cam = np.linalg.inv(cam_to_world) @ np.append(obs["privileged"][f"{name}_pos"], 1.0)
    u, v, w = k @ p_cam[:3]
    row, col = int(round(v / w)), int(round(u / w))
    assert 0 <= row < 256 and 0 <= col < 256
    assert abs(obs["depth"]["agentview"][row, col] - p_cam[2]) < 0.1, "depth at the projected pixel ~ object depth"


def test_gymnasium_registry_builds_the_env_lazily():
    import gymnasium as gym

    env = gym.make(gym_id("libero_object", 2), views=(), disable_env_checker=True)
    assert env.unwrapped._sim_env is None, "no simulator before the first reset"
    assert env.get_wrapper_attr("_max_episode_steps") == 280, "the protocol step budget is a TimeLimit wrapper"
    env.close()


def test_bad_task_id_names_the_range():
    with pytest.raises(UnknownChoice, match=r"0\.\.9"):
        make_env(load_suite("libero_goal"), 10, PROTOCOL)
