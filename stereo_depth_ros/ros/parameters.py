"""Node parameters that cannot be used, said in one line: at start-up (a value out of its range,
of the wrong type, not one of its choices) and at run time (a device torch does not know).

rclpy refuses such values with exceptions whose text is its own; ``declare_error`` turns them
into "parameter NAME := VALUE ...: the rule" that ``node_main`` prints as "cannot start: ...".
No torch here: nodes validate a device string before anything is built from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

DECLARE_ERRORS = (InvalidParameterTypeException, InvalidParameterValueException)
DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")
_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a floating-point number",
               str: "a string"}
_GIVEN_TYPES = {"BOOL": "a boolean", "INTEGER": "an integer", "DOUBLE": "a floating-point number",
                "STRING": "a string"}


class ParameterError(ValueError):
    """A parameter value a node cannot start with; the message names it and the rule."""


def rule(default: Any, rng: tuple | None = None, choices: Sequence[str] = ()) -> str:
    """What a parameter declared with this default, range and choices accepts, in words."""
    kind = _TYPE_NAMES.get(type(default), type(default).__name__)
    if choices:
        return f"one of {', '.join(choices)}"
    if rng is not None and isinstance(default, int) and not isinstance(default, bool):
        step = rng[2] if len(rng) > 2 else 1
        return f"{kind} from {rng[0]} to {rng[1]}" + (f" in steps of {step}" if step > 1 else "")
    if rng is not None and isinstance(default, float):
        return f"{kind} from {rng[0]:g} to {rng[1]:g}"
    return kind


def declare_error(name: str, default: Any, rng: tuple | None, exc: Exception) -> ParameterError:
    """The one-line error for rclpy refusing ``name``'s start-up value with ``exc``."""
    text = str(exc)
    if isinstance(exc, InvalidParameterTypeException):
        m = re.search(r"to '(.*)' of type '(\w+)'", text)
        given = f" := {m.group(1)} is {_GIVEN_TYPES.get(m.group(2), m.group(2).lower())}" if m else ""
        hint = (f" (write {m.group(1)}.0)" if m and m.group(2) == "INTEGER" and isinstance(default, float)
                else "")
        return ParameterError(f"parameter {name}{given}{hint}, but it takes {rule(default, rng)}")
    m = re.search(r"Invalid parameter value \((.*?)\) for parameter", text)
    given = f" := {m.group(1)}" if m else ""
    return ParameterError(f"parameter {name}{given} is out of range: it takes {rule(default, rng)}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ParameterError(f"parameter {name} := {value!r} is not {rule('', None, choices)}")


def device_problem(device: str) -> str | None:
    """Why ``device`` is not a device the nodes take (None when it is)."""
    if _DEVICE.fullmatch(str(device)):
        return None
    return f"device {device!r} is not a device: use {DEVICES}"
