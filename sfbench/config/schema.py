"""Dataclass schemas for config sections: unknown keys and bad values become one clear error."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from sfbench.core.errors import InvalidConfig, UnknownChoice

T = TypeVar("T")


def make_config(cls: type[T], values: dict[str, Any], *, what: str) -> T:
    """Build dataclass ``cls`` from ``values``, naming unknown fields and the valid ones."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UnknownChoice(f"{what} field", unknown[0], fields)
    _check_types(cls, values, what)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise InvalidConfig(f"Invalid {what} config: {e}") from None


_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_types(cls: type, values: dict[str, Any], what: str) -> None:
    """Name the first field whose value is not of its scalar type (``int``, ``float``, ``bool``, ``str``)."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        kind = hints.get(name)
        if kind not in _SCALARS or value is None:
            continue
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise InvalidConfig(f"{what}.{name}={value!r} must be {_SCALARS[kind]}")
