"""The fake benchmark whose simulator crashes in the first episode (init state 0) only."""

from __future__ import annotations

from tests.fakes import ReachEnv, task_spec

__all__ = ["make_env", "task_spec"]


class CrashOnFirstEpisode(ReachEnv):
    def reset(self, *, seed=None, options=None):
        self.crash_at_step = 3 if (options or {}).get("init_state_index", 0) == 0 else None
        return super().reset(seed=seed, options=options)


def make_env(suite, task_id, protocol, **kwargs):
    return CrashOnFirstEpisode(suite, task_id, protocol, **kwargs)
