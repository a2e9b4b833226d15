"""Grading function calls the way the Berkeley Function Calling Leaderboard does (its AST check).

A call is correct when it names the expected function, every argument it gives
is a parameter of that function, every required parameter is given, each given
argument has the declared type and takes one of the allowed values, and every
expected parameter left out may be omitted (its allowed values include ``""``).

Strings compare case-insensitively, ignoring spaces and common punctuation;
numbers compare as numbers (an integer is accepted where a float is declared,
never a boolean for a number); lists compare element by element, in order;
objects compare key by key against an allowed object. Several expected calls
(parallel cases) match the given calls in any order, one to one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Grade", "grade_calls", "normalize_text", "value_matches"]

# Punctuation that does not change what a string value means ("New York, NY" is
# "new york ny"): spaces, commas, dots, slashes, dashes, underscores, stars,
# carets and quotes.
_IGNORED = re.compile(r"[\s,./\-_*^'\"]")


@dataclass(frozen=True)
class Grade:
    """The verdict on one case.

    Attributes:
        ok: the calls are right.
        reason: why not (empty when right).
    """

    ok: bool
    reason: str = ""


def normalize_text(text: str) -> str:
    """A string as compared: lower case, spaces and common punctuation dropped."""
    return _IGNORED.sub("", text).lower()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_matches(value: Any, allowed: Any) -> bool:
    """Whether a given argument value equals one allowed value."""
    if isinstance(allowed, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value == allowed
    if _is_number(allowed):
        # Python compares ints and floats exactly; float() of a huge int overflows.
        return _is_number(value) and value == allowed
    if isinstance(allowed, str):
        return isinstance(value, str) and normalize_text(value) == normalize_text(allowed)
    if isinstance(allowed, list):
        return (
            isinstance(value, list)
            and len(value) == len(allowed)
            and all(value_matches(v, a) for v, a in zip(value, allowed, strict=True))
        )
    if isinstance(allowed, dict):
        return isinstance(value, dict) and _object_matches(value, allowed)
    return bool(value == allowed)


def _object_matches(value: Mapping[str, Any], allowed: Mapping[str, Any]) -> bool:
    """An object against an allowed object whose entries are lists of alternatives."""
    if set(value) - set(allowed):
        return False
    for key, options in allowed.items():
        options = options if isinstance(options, list) else [options]
        if key not in value:
            if "" not in options:
                return False
        elif not any(value_matches(value[key], o) for o in options if o != ""):
            return False
    return True


_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "float": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "tuple": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "dict": lambda v: isinstance(v, dict),
}


def _type_problem(name: str, value: Any, schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    check = _TYPE_CHECKS.get(declared) if isinstance(declared, str) else None
    if check is not None and not check(value):
        return f"argument {name!r} should be {declared}, got {type(value).__name__}"
    return None


def _grade_one(
    name: str,
    arguments: Mapping[str, Any],
    expected_name: str,
    expected: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
) -> Grade:
    if name != expected_name:
        return Grade(False, f"called {name!r}, expected {expected_name!r}")
    properties: Mapping[str, Any] = (parameters or {}).get("properties", {})
    known = set(properties) if parameters is not None else set(expected)
    extra = sorted(set(arguments) - known)
    if extra:
        return Grade(False, f"unknown argument(s) {', '.join(map(repr, extra))}")
    for required in (parameters or {}).get("required", ()):
        if required not in arguments:
            return Grade(False, f"required argument {required!r} missing")
    for key, value in arguments.items():
        problem = _type_problem(key, value, properties.get(key, {}))
        if problem:
            return Grade(False, problem)
        if key not in expected:
            # A parameter of the function the answer does not constrain: allowed.
            continue
        options = expected[key] if isinstance(expected[key], list) else [expected[key]]
        if not any(value_matches(value, o) for o in options if o != ""):
            return Grade(False, f"argument {key!r}={value!r} is not one of {options!r}")
    for key, options in expected.items():
        options = options if isinstance(options, list) else [options]
        if key not in arguments and "" not in options:
            return Grade(False, f"argument {key!r} missing")
    return Grade(True)


def grade_calls(
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    expected: Sequence[Mapping[str, Mapping[str, Any]]],
    functions: Mapping[str, Mapping[str, Any]] | None = None,
) -> Grade:
    """Grade the calls a model made against the expected ones.

    Args:
        calls: ``(function name, arguments)`` per call, as the model made them.
        expected: one ``{function name: {parameter: [allowed values]}}`` per
            expected call (BFCL's ``ground_truth``).
        functions: the offered functions' parameter schemas by name, for the
            unknown-argument, required and type checks (``None``: skipped).

    Returns:
        ``Grade(ok=True)``, or the first reason the calls are wrong.
    """
    if len(calls) != len(expected):
        return Grade(False, f"made {len(calls)} call(s), expected {len(expected)}")
    functions = functions or {}
    if len(expected) == 1:
        ((want_name, want_args),) = expected[0].items()
        name, arguments = calls[0]
        return _grade_one(name, arguments, want_name, want_args, functions.get(name))
    # Parallel calls: any order, each expected call used once (a bipartite
    # matching, so a call that fits two expectations cannot block another call).
    fits = [
        [
            _grade_one(name, arguments, *next(iter(want.items())), functions.get(name)).ok
            for want in expected
        ]
        for name, arguments in calls
    ]
    owner: dict[int, int] = {}

    def assign(call: int, seen: set[int]) -> bool:
        for want, ok in enumerate(fits[call]):
            if ok and want not in seen:
                seen.add(want)
                if want not in owner or assign(owner[want], seen):
                    owner[want] = call
                    return True
        return False

    for i, (name, arguments) in enumerate(calls):
        if not assign(i, set()):
            return Grade(False, f"call {name}({dict(arguments)!r}) matches no expected call")
    return Grade(True)
