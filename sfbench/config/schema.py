"""Dataclass schemas for config sections: unknown keys and bad values become one clear error."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sfbench.core.errors import InvalidConfig, UnknownChoice

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
