"""Protocol profiles: every constant that changes a score, and a hash that identifies them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from sfbench.errors import InvalidConfig


@dataclass(frozen=True)
class Protocol:
    """A named, versioned evaluation protocol (``configs/protocol/<name>.yaml``).

    Attributes:
        name: Profile name, e.g. ``libero_oft``.
        version: Bumped whenever a constant changes.
        max_steps: Control steps allowed per episode, by suite (wait steps not included).
        num_steps_wait: No-op steps after restoring the init state, to let objects settle.
        wait_action: The action sent during the wait steps.
        init_state: How episode i picks its initial state (``index``: LIBERO's fixed state i).
        env_seed: Seed passed to the simulator once when it is created.
        global_seed: Seed of the policy-side RNGs (numpy / torch), per episode offset by index.
        render_size: Camera height and width in pixels.
        rotate_180: Rotate every view by 180 degrees (OpenVLA-OFT / openpi convention).
        policy_image_size: Size the policy adapter resizes images to.
        center_crop_area: Area fraction of the policy-side centre crop (1.0 = no crop).
        open_loop_steps: Actions of a chunk executed before the policy is queried again.
        render_profile: Renderer quality profile (``faithful`` = the upstream defaults).
    """

    name: str
    version: int
    max_steps: dict[str, int]
    num_steps_wait: int
    wait_action: tuple[float, ...]
    init_state: str
    env_seed: int
    global_seed: int
    render_size: int
    rotate_180: bool
    policy_image_size: int
    center_crop_area: float
    open_loop_steps: int
    render_profile: str = "faithful"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.init_state != "index":
            problems.append(f"init_state={self.init_state!r} (valid: 'index')")
        if self.open_loop_steps < 1:
            problems.append(f"open_loop_steps={self.open_loop_steps} (must be >= 1)")
        if not 0.0 < self.center_crop_area <= 1.0:
            problems.append(f"center_crop_area={self.center_crop_area} (must be in (0, 1])")
        if self.render_profile != "faithful":
            problems.append(f"render_profile={self.render_profile!r} (valid: 'faithful')")
        if len(self.wait_action) != 7:
            problems.append(f"wait_action has {len(self.wait_action)} entries (expected 7)")
        if problems:
            raise InvalidConfig(f"Protocol '{self.name}': invalid " + "; ".join(problems))

    def max_steps_for(self, suite: str) -> int:
        """Step budget of ``suite``; a suite the profile does not define is an error, not a default."""
        if suite not in self.max_steps:
            raise InvalidConfig(
                f"Protocol '{self.name}' defines no max_steps for suite '{suite}'. "
                f"Defined: {', '.join(sorted(self.max_steps))}."
            )
        return self.max_steps[suite]

    def to_dict(self) -> dict:
        """Every score-changing field (the description is excluded)."""
        d = asdict(self)
        d.pop("description")
        d["wait_action"] = list(self.wait_action)
        return d

    @property
    def hash(self) -> str:
        """Short content hash of all score-changing constants."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        """Build from a config mapping (e.g. the resolved ``protocol`` group)."""
        d = dict(d)
        d["max_steps"] = {str(k): int(v) for k, v in d["max_steps"].items()}
        d["wait_action"] = tuple(float(a) for a in d["wait_action"])
        return cls(**d)
