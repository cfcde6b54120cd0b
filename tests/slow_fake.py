"""The fake benchmark whose steps take a second, so that a test can signal a run mid-episode."""

from __future__ import annotations

import time

from tests.fakes import ReachEnv, task_spec

__all__ = ["make_env", "task_spec"]


class SlowReachEnv(ReachEnv):
    def step(self, action):
        time.sleep(1.0)
        return super().step(action)


def make_env(suite, task_id, protocol, **kwargs):
    return SlowReachEnv(suite, task_id, protocol, **kwargs)
