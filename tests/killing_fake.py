"""The fake benchmark whose worker process is killed from outside (SIGKILL) in episode 0 only."""

from __future__ import annotations

import os
import signal

from tests.fakes import ReachEnv, task_spec

__all__ = ["make_env", "task_spec"]


class KilledInFirstEpisode(ReachEnv):
    def step(self, action):
        if self.target == 1.0 and self.t == 2:  # init state 0, third step: like the OOM killer
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


def make_env(suite, task_id, protocol, **kwargs):
    return KilledInFirstEpisode(suite, task_id, protocol, **kwargs)
