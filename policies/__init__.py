"""Policy adapters (installed as ``sfbench.policies``).

A policy config (``configs/policy/<name>.yaml``) names its ``family``: the module or package
``sfbench.policies.<family>`` (default: the name itself) holding a :class:`Policy` subclass whose
``name`` is the family. Several configs may share a family (``tiny_vla``, ``tiny_vla_sf``,
``tiny_vla_depth``). Families are imported on demand, so a policy's heavy dependencies load only
when it is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

import yaml

from sfbench.config.schema import make_config
from sfbench.config.tree import config_dir, group_choices
from sfbench.core.errors import UnknownChoice
from sfbench.policies.base import Policy, Requirements

__all__ = ["Policy", "Requirements", "make_config", "make_policy", "make_policy_config", "policy_class"]


def policy_class(family: str) -> type[Policy]:
    """The :class:`Policy` subclass of ``family``, imported from ``sfbench.policies.<family>``."""
    module = importlib.import_module(f"sfbench.policies.{family}")
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Policy) and obj.__dict__.get("name") == family:
            return obj
    raise TypeError(f"Module sfbench.policies.{family} defines no Policy subclass with name = {family!r}")


def _yaml_family(name: str) -> str:
    """The ``family`` of ``configs/policy/<name>.yaml``, following its defaults list; else the name."""
    option = yaml.safe_load((config_dir() / "policy" / f"{name}.yaml").read_text()) or {}
    if "family" in option:
        return str(option["family"])
    parents = [d for d in option.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return _yaml_family(parents[0]) if parents else name


def _split(config: dict[str, Any]) -> tuple[type[Policy], dict[str, Any]]:
    """The family class of a ``policy`` config group and the fields for its config dataclass."""
    config = dict(config)
    name = config.pop("name", None)
    if name not in group_choices("policy"):
        raise UnknownChoice("policy", name, group_choices("policy"))
    cls = policy_class(config.pop("family", None) or _yaml_family(name))
    if "name" in {f for f in cls.config_class.__dataclass_fields__}:  # families with several named configs
        config["name"] = name
    return cls, config


def make_policy_config(config: dict[str, Any]) -> Any:
    """Validate a ``policy`` config group (``name``, ``family`` + fields) into its config dataclass."""
    cls, fields = _split(config)
    return make_config(cls.config_class, fields, what=f"{config.get('name')} policy")


def family_of(config: dict[str, Any]) -> type[Policy]:
    """The :class:`Policy` class that ``config`` builds."""
    return _split(config)[0]


def make_policy(config: dict[str, Any]) -> Policy:
    """Build the policy described by a ``policy`` config group."""
    return family_of(config)(make_policy_config(config))
