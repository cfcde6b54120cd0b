"""``collect.drop_noops``: OFT's no-op rule in demo collection (refusals; real LIBERO episodes, ``sim``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sfbench.config.tree import load_protocol, load_suite
from sfbench.envs import make_env
from sfbench.eval.rollout import Episode, LocalSlot, RolloutLoop
from sfbench.policies.base import Policy
from sfbench.policies.scripted import ScriptedPolicy
from sfbench.train.data.demos import append_demo
from tests.conftest import run_cli

TASK0 = "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"


def collect(tmp_path, *args):
    return run_cli("collect", "suite=libero_spatial", "collect.tasks=[0]", "collect.episodes_per_task=1",
                   "collect.progress=false", f"output_dir={tmp_path}", "run_id=demos", *args)


def test_a_run_keeps_one_drop_noops_setting(tmp_path):
    path = tmp_path / "demos" / "demos" / f"{TASK0}_demo.hdf5"
    arrays = {"actions": np.zeros((2, 7)), "obs/agentview_rgb": np.zeros((2, 4, 4, 3), np.uint8),
              **{f"obs/{k}": np.zeros((2, n)) for k, n in [("ee_pos", 3), ("ee_ori", 3), ("gripper_states", 2)]}}
    append_demo(path, arrays, init_state_index=0, file_attrs={"drop_noops": True}, demo_attrs={"noops_dropped": 3})
    proc = collect(tmp_path, "collect.drop_noops=false")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "collected with collect.drop_noops=true; this command asks for false" in proc.stderr.strip(), proc.stderr
    assert not (tmp_path / "demos" / "demos" / "records").exists(), "refused before any episode"


def test_drop_noops_is_refused_off_libero(tmp_path):
    proc = run_cli("collect", "suite=aloha_insertion", "collect.drop_noops=true", f"output_dir={tmp_path / 'o'}")
    assert proc.returncode == 2 and "LIBERO's 7-D actions; suite aloha_insertion" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


class WithNoops(Policy):
    """The scripted expert with a no-op (no motion, the last gripper command) before each of its actions."""

    name = "test_with_noops"
    config_class = dict

    def __init__(self):
        self.expert, self.inserted = ScriptedPolicy(), 0

    @property
    def requirements(self):
        return self.expert.requirements

    def reset(self, task, *, seed=None):
        self.expert.reset(task, seed=seed)
        self.grip, self.inserted = -1.0, 0

    def act(self, obs):
        action = self.expert.act(obs)
        noop = np.array([[0, 0, 0, 0, 0, 0, self.grip]])
        self.grip, self.inserted = float(action[0, -1]), self.inserted + 1
        return np.concatenate([noop, action])


@pytest.mark.sim
def test_dropped_noops_leave_the_expert_demo_unchanged_in_libero():
    # the first 20 steps of a 73-step solve, no settling steps: the same comparison for a third of the time
    protocol = dataclasses.replace(load_protocol("libero_oft"), render_size=32, max_steps={"libero_spatial": 20},
                                   num_steps_wait=0)
    env = make_env(load_suite("libero_spatial"), 0, protocol, views=("agentview",), depth=False, privileged=True)
    outcomes = []
    try:
        for policy, drop in [(ScriptedPolicy(), False), (noisy := WithNoops(), True)]:
            loop = RolloutLoop([LocalSlot(lambda _t: env, protocol)], [policy], protocol)
            loop.run([Episode(0, 0, 7, keep_trajectory=True, drop_noops=drop)], lambda _e, out: outcomes.append(out))
    finally:
        env.close()
    plain, dropped = outcomes
    assert plain.failure_reason is None and dropped.failure_reason is None
    assert dropped.noops_dropped == noisy.inserted == 20 and plain.noops_dropped == 0
    assert dropped.steps == plain.steps == 20, "no dropped no-op was executed"
    for (obs_a, act_a), (obs_b, act_b) in zip(plain.trajectory, dropped.trajectory, strict=True):
        np.testing.assert_array_equal(act_a, act_b)
        np.testing.assert_array_equal(obs_a["proprio"], obs_b["proprio"])
