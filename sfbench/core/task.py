"""What a policy may know about a task before the episode starts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one benchmark task.

    Attributes:
        suite: Suite name, e.g. ``libero_spatial``.
        task_id: Index of the task inside its suite.
        name: Upstream task name (the BDDL file stem for LIBERO).
        instruction: Natural-language instruction given to the policy.
        action_dim: Dimensions of the suite's action space (LIBERO: 7 = delta end-effector 6 +
            gripper; bimanual suites: 14 joints).
        goal: Goal predicates as parsed from the task definition, e.g.
            ``[["on", "akita_black_bowl_1", "plate_1"]]``. Part of the public task file, not
            simulator state; only privileged (scripted) policies use it.
        objects: Movable object names in the scene.
        fixtures: Fixture names in the scene (tables, cabinets, stoves, ...).
    """

    suite: str
    task_id: int
    name: str
    instruction: str
    action_dim: int
    goal: tuple[tuple[str, ...], ...] = ()
    objects: tuple[str, ...] = ()
    fixtures: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)
