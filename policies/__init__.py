"""Policy adapters (installed as ``sfbench.policies``).

Each policy is one module ``sfbench.policies.<name>`` with a ``<Name>Config`` dataclass and a
``Policy`` subclass whose ``name`` equals the module stem and whose ``config_class`` is that
dataclass. Modules are imported on demand, so a policy's heavy dependencies load only when it
is chosen.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, TypeVar

from sfbench.config import group_choices
from sfbench.errors import InvalidConfig, UnknownChoice
from sfbench.policies.base import Policy, Requirements

__all__ = ["Policy", "Requirements", "make_config", "make_policy", "make_policy_config", "policy_class"]

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


def policy_class(name: str) -> type[Policy]:
    """The :class:`Policy` subclass called ``name``, imported from ``sfbench.policies.<name>``."""
    if name not in group_choices("policy"):
        raise UnknownChoice("policy", name, group_choices("policy"))
    module = importlib.import_module(f"sfbench.policies.{name}")
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Policy) and obj.__dict__.get("name") == name:
            return obj
    raise TypeError(f"Module sfbench.policies.{name} defines no Policy subclass with name = {name!r}")


def make_policy_config(config: dict[str, Any]) -> Any:
    """Validate a ``policy`` config group (``name`` + fields) into the policy's config dataclass."""
    config = dict(config)
    cls = policy_class(config.pop("name", None))
    return make_config(cls.config_class, config, what=f"{cls.name} policy")


def make_policy(config: dict[str, Any]) -> Policy:
    """Build the policy named ``config["name"]`` from the rest of ``config``."""
    return policy_class(config["name"])(make_policy_config(config))
