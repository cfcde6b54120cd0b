"""Which suite task a dataset episode demonstrates, from its instruction.

Released LIBERO datasets (RLDS, LeRobot) keep no task id: their instruction is the only link to the
benchmark. OpenVLA rebuilt it from LIBERO's demo file names, which reproduces LIBERO's ``task.language``
exactly for the 40 tasks of libero_spatial/object/goal/10, and those 40 are distinct, so an exact match
(after lower-casing and collapsing white space) identifies suite and task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sfbench.config.tree import load_suite
from sfbench.core.errors import InvalidConfig
from sfbench.envs import benchmark_module

# The suites the released datasets cover, searched when ``data.suite`` is not given.
RELEASED_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")


def normalize_instruction(text: str) -> str:
    """Lower case, single spaces, no surrounding white space or trailing full stop."""
    return re.sub(r"\s+", " ", text).strip().rstrip(".").lower()


@cache
def suite_instructions(suite: str) -> tuple[str, ...]:
    """Normalized instructions of ``suite``'s tasks, in task-id order."""
    config = load_suite(suite)
    module = benchmark_module(config)
    if hasattr(module, "task_instructions"):
        texts = module.task_instructions(config.name)
    else:
        texts = [module.task_spec(config.name, t).instruction for t in range(config.num_tasks)]
    return tuple(normalize_instruction(t) for t in texts)


@dataclass(frozen=True)
class TaskMatch:
    """The suite and task an instruction belongs to (``suite`` None and ``task_id`` -1 when none)."""

    suite: str | None
    task_id: int


class TaskMatcher:
    """Match instructions against one suite (``data.suite``) or the released suites.

    Args:
        suite: Restrict to this suite (episodes of other tasks are then filtered out by the readers).
    """

    def __init__(self, suite: str | None):
        self.suite = load_suite(suite).name if suite else None
        suites = (self.suite,) if self.suite else RELEASED_SUITES
        self._index: dict[str, TaskMatch] = {}
        for name in suites:
            for task_id, text in enumerate(suite_instructions(name)):
                self._index.setdefault(text, TaskMatch(name, task_id))

    def match(self, instruction: str) -> TaskMatch:
        """The task whose instruction equals ``instruction`` (normalized), or ``TaskMatch(None, -1)``."""
        return self._index.get(normalize_instruction(instruction), TaskMatch(None, -1))

    def keep(self, instruction: str) -> bool:
        """Whether an episode with ``instruction`` is used: any episode, or only ``suite``'s when one is set."""
        return self.suite is None or self.match(instruction).suite is not None


def check_some_kept(kept: int, total: int, matcher: TaskMatcher, path: str, seen: list[str]) -> None:
    """Refuse a dataset in which ``data.suite`` matched no episode, naming some of the instructions found."""
    if total and not kept:
        found = "; ".join(sorted(set(seen))[:3])
        raise InvalidConfig(f"data.path={path}: none of its {total} episodes is a task of data.suite="
                            f"{matcher.suite} (instructions found: {found})")
