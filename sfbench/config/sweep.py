"""Hydra-style multirun: expand sweep overrides (``a=1,2 b=x,y``) into one override list per job."""

from __future__ import annotations

import itertools

from sfbench.core.errors import InvalidConfig


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Cartesian product of every sweep override, in Hydra's order (first key varies slowest).

    ``["data.fraction=0.05,1.0", "train.steps=10"]`` gives
    ``[["data.fraction=0.05", "train.steps=10"], ["data.fraction=1.0", "train.steps=10"]]``.
    Lists (``eval.tasks=[0,1]``) are single values, as in Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise InvalidConfig(str(e).strip().splitlines()[0]) from None
    choices = []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.is_sweep_override():
            prefix = raw.split("=", 1)[0]
            choices.append([f"{prefix}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([raw])
    return [list(combo) for combo in itertools.product(*choices)]
