"""Tools defined by a JSON Schema rather than by a Python signature.

For tools whose interface comes from elsewhere: a LangChain tool's schema, a
function-calling data set, a workflow file. Arguments are checked against the
schema with ``jsonschema``; optional arguments the model leaves out stay out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from plait.errors import ConfigError

from ._jsonschema import UNSET, json_schema_model
from ._tool import Tool, ToolExampleLike, _check_name, _clean_schema

__all__ = ["schema_tool"]


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments the model gave (optional ones it left out are not passed)."""
    return {k: v for k, v in arguments.items() if v is not UNSET}


def _echo(**arguments: Any) -> dict[str, Any]:
    return _given(arguments)


def schema_tool(
    name: str,
    parameters: dict[str, Any],
    *,
    description: str = "",
    fn: Callable[..., Any] | None = None,
    timeout_s: float | None = None,
    tags: Iterable[str] = (),
    examples: Iterable[ToolExampleLike] = (),
) -> Tool:
    """A tool whose arguments are described by a JSON Schema.

    Args:
        name: the tool's name.
        parameters: JSON Schema of the arguments object.
        description: what the tool does, for the model.
        fn: called with the arguments the model gave (left-out optional ones are
            not passed), sync or async (an async one runs on the event loop);
            ``None``: the tool returns its arguments (a stub, for evaluations
            and dry runs).
        timeout_s: a per-tool time limit.
        tags: labels for filtering toolsets.
        examples: worked examples (see :func:`plait.tools.tool`).

    Raises:
        ConfigError: the name is invalid, the schema is not a JSON Schema of an
            object, or an example does not fit it.
    """
    _check_name(name)
    if parameters.get("type", "object") != "object":
        raise ConfigError(f"tool {name!r}: the parameters schema must be of type 'object'")
    try:
        model = json_schema_model(name, {"type": "object", **parameters})
        cleaned = _clean_schema({"type": "object", **parameters})  # refuses recursive types
    except ValueError as e:
        raise ConfigError(f"tool {name!r}: {e}") from e
    call = fn or _echo
    invoke: Callable[..., Any]
    if inspect.iscoroutinefunction(call):
        # Async stays async: a sync wrapper would send the call to a worker thread
        # only to hand a coroutine back to the loop.
        async def invoke_async(**arguments: Any) -> Any:
            return await call(**_given(arguments))

        invoke = invoke_async
    else:

        def invoke_sync(**arguments: Any) -> Any:
            return call(**_given(arguments))

        invoke = invoke_sync

    built = Tool(
        name=name,
        description=description,
        parameters=cleaned,
        fn=invoke,
        args_model=model,
        timeout_s=timeout_s,
        tags=frozenset(tags),
    )
    example_list = list(examples)
    return built.with_examples(example_list) if example_list else built
