"""Building a settings dataclass from a config file's mapping, refusing keys it does not know."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_options(cls: type[T], options: dict[str, Any], what: str) -> T:
    """``cls(**options)``, or ValueError naming the unknown keys as "unknown <what> option(s)"."""
    unknown = set(options) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return cls(**options)
