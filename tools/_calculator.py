"""A calculator tool that evaluates arithmetic by walking the syntax tree (no ``eval``)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from plait.errors import ToolError

from ._tool import tool

__all__ = ["calculator", "evaluate"]

_MAX_LENGTH = 500
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e300

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def evaluate(expression: str) -> float | int:
    """Evaluate an arithmetic expression safely.

    Numbers, ``+ - * / // % **``, parentheses, the constants ``pi``, ``e``,
    ``tau`` and the functions ``abs round min max sqrt exp log log10 sin cos tan
    floor ceil``. Anything else (names, attributes, strings, comprehensions...)
    is refused before evaluation.

    Raises:
        ToolError: the expression is not arithmetic, too long, cannot be computed,
            or a value on the way is not a finite number (``1e309``, ``inf - inf``).
    """
    if len(expression) > _MAX_LENGTH:
        raise ToolError(f"expression is longer than {_MAX_LENGTH} characters")
    # Models often write '^' for powers and 'x' or '×' for products.
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ToolError(f"cannot parse {expression!r} as arithmetic ({e.msg})") from e
    try:
        value = _eval(tree.body)
    except (ArithmeticError, ValueError, TypeError) as e:
        raise ToolError(f"cannot compute {expression!r}: {e}") from e
    except _NotFinite as e:
        raise ToolError(f"the result of {expression!r} is not a finite number ({e})") from e
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class _NotFinite(Exception):
    """A value on the way is ``inf`` or ``nan`` (it may vanish later: ``max(1, nan)`` is 1)."""


def _eval(node: ast.expr) -> Any:
    value = _eval_node(node)
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotFinite(f"{ast.unparse(node)} is {value}")
    return value


def _eval_node(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex) or abs(result) > _MAX_MAGNITUDE:
            raise ValueError("result is out of range")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
    raise ToolError(f"{ast.unparse(node)!r} is not allowed in a calculator expression")


# The pattern keeps constrained decoders (the local backend's grammar) from
# wandering into quotes and braces; evaluate() checks the expression anyway.
_PATTERN = r"^[0-9a-z(-][0-9a-z+*/%^(). -]*$"
_EXPRESSION = Annotated[str, Field(min_length=1, max_length=200, pattern=_PATTERN)]


@tool(pure=True)
def calculator(expression: _EXPRESSION) -> str:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: arithmetic such as "12 * (3 + 4)" or "sqrt(2) / 2".
    """
    return str(evaluate(expression))
