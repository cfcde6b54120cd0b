"""Policy adapters (installed as ``sfbench.policies``).

Each policy is one module ``sfbench.policies.<name>`` with a ``<Name>Config`` dataclass, a
``Policy`` subclass whose ``name`` equals the module stem, and a module-level
``make_policy(config: dict) -> Policy`` hook. Modules are imported on demand, so a policy's
heavy dependencies load only when it is chosen.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, TypeVar

from sfbench.config import group_choices
from sfbench.errors import InvalidConfig, UnknownChoice
from sfbench.policies.base import Policy, Requirements

__all__ = ["Policy", "Requirements", "make_policy", "make_config"]

T = TypeVar("T")


def make_config(cls: type[T], values: dict[str, Any], *, what: str) -> T:
    """Build dataclass ``cls`` from ``values``, naming unknown fields and the valid ones."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UnknownChoice(f"{what} field", unknown[0], fields)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise InvalidConfig(f"Invalid {what} config: {e}") from None


def make_policy(config: dict[str, Any]) -> Policy:
    """Build the policy named ``config["name"]`` from the rest of ``config``."""
    config = dict(config)
    name = config.pop("name", None)
    if name not in group_choices("policy"):
        raise UnknownChoice("policy", name, group_choices("policy"))
    module = importlib.import_module(f"sfbench.policies.{name}")
    return module.make_policy(config)
