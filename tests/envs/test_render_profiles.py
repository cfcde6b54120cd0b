"""Render profiles against the real simulator (marker ``sim``): same physics, faithful = LIBERO."""

from __future__ import annotations

import numpy as np
import pytest

from sfbench.config.tree import load_protocol, load_suite
from sfbench.envs import make_env
from sfbench.envs.libero import CAMERAS, _bddl_path, _visual_only_meshes, init_states

pytestmark = pytest.mark.sim
SUITE = load_suite("libero_spatial")
FAITHFUL, FAST = load_protocol("libero_oft"), load_protocol("libero_oft_fast")


def _trajectory(protocol, views, mesh_cache_dir, steps=12):
    """Proprio and privileged object poses after each of ``steps`` fixed random actions."""
    env = make_env(SUITE, 0, protocol, views=views, privileged=True, mesh_cache_dir=mesh_cache_dir)
    obs, _ = env.reset(options={"init_state_index": 1})
    rows = []
    for action in np.random.default_rng(0).uniform(-1.0, 1.0, (steps, 7)):
        obs, *_ = env.step(action)
        rows.append(np.concatenate([obs["proprio"], *obs["privileged"].values()]))
    model = env.unwrapped.sim.model._model
    triangles = int(model.mesh_facenum[_visual_only_meshes(model)].sum())
    env.close()
    return np.stack(rows), triangles


def test_fast_profile_draws_fewer_triangles_with_bit_identical_physics(tmp_path):
    faithful, faithful_triangles = _trajectory(FAITHFUL, ("agentview",), tmp_path)
    fast, fast_triangles = _trajectory(FAST, ("agentview",), tmp_path)
    fast_no_views, _ = _trajectory(FAST, (), tmp_path)
    assert np.array_equal(faithful, fast), "render settings must not change a single bit of the physics"
    assert np.array_equal(fast, fast_no_views), "rendering views must not change the physics"
    assert fast_triangles < 0.4 * faithful_triangles, "fast profile decimates the visual meshes"
    assert list(tmp_path.glob("*.npz")), "decimated meshes are cached on disk"


def test_faithful_images_equal_liberos_own_render():
    from libero.libero.envs import OffScreenRenderEnv

    env = make_env(SUITE, 0, FAITHFUL, views=("agentview",))
    ours, _ = env.reset(options={"init_state_index": 2})
    env.close()
    size = FAITHFUL.render_size
    upstream = OffScreenRenderEnv(bddl_file_name=str(_bddl_path(SUITE.name, 0)), camera_heights=size,
                                  camera_widths=size, camera_names=list(CAMERAS.values()))
    upstream.seed(FAITHFUL.env_seed)
    upstream.reset()
    raw = upstream.set_init_state(init_states(SUITE.name, 0)[2])
    for _ in range(FAITHFUL.num_steps_wait):
        raw, *_ = upstream.step(np.asarray(FAITHFUL.wait_action, dtype=np.float64))
    upstream.close()
    assert np.array_equal(ours["agentview"], raw["agentview_image"][::-1, ::-1]), "faithful = LIBERO's pixels"
