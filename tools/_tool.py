"""``@tool``: a Python function (sync or async) as a tool a model can call."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from plait.chat import ToolSpec
from plait.errors import ConfigError, ToolArgumentError
from plait.provenance import Source, Sourced, parse_source, tool_source

from ._docstrings import parse_docstring
from ._threads import SYNC_TOOLS

__all__ = ["Tool", "ToolExample", "ToolExampleLike", "json_schema_of", "render_result", "tool"]

_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


@dataclass(frozen=True)
class ToolExample:
    """A worked example of a tool: a request and the arguments that answer it.

    Agents show a small model the examples most similar to the request at hand
    (retrieved by an embedder), after the shared system prompt.

    Attributes:
        request: what a user asked.
        arguments: the arguments of the call that answers it (checked against
            the tool's schema when the tool is built).
    """

    request: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


ToolExampleLike = ToolExample | Mapping[str, Any] | tuple[str, Mapping[str, Any]]
"""A :class:`ToolExample`, a ``{"request": ..., "arguments": {...}}`` mapping, or a pair."""


@dataclass(frozen=True)
class Tool:
    """A callable the model can use: a name, a description, a JSON Schema and a function.

    Build one with :func:`tool`. Calling the tool object directly calls the
    wrapped function unchanged; :meth:`acall` validates model-written
    arguments first (the tool runner validates once, then calls
    :meth:`acall_validated`).

    Attributes:
        name: what the model calls it.
        description: what it does, for the model.
        parameters: JSON Schema of the arguments object.
        fn: the wrapped function.
        args_model: the pydantic model that validates arguments.
        timeout_s: a per-tool time limit overriding the runtime's default.
        tags: labels for filtering toolsets.
        idempotency_key: for a side-effecting tool, gives the key of a call from
            its validated arguments; executors reuse the stored result of a call
            with the same key instead of calling again (``None``: no key).
        output_sources: where the tool's results come from when it does not say
            so itself (by returning :class:`~plait.provenance.Sourced`):
            ``None`` means ``tool:<name>``, an untrusted source; an empty set
            means the result derives only from the arguments (a pure function
            such as the calculator).
        examples: worked examples (request -> arguments) shown to the model
            when a request resembles them.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    timeout_s: float | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    idempotency_key: Callable[[dict[str, Any]], str] | None = None
    output_sources: frozenset[Source] | None = None
    examples: tuple[ToolExample, ...] = ()

    def sourced(self, value: Any) -> Sourced:
        """A result of this tool with the sources it derives from (besides its arguments)."""
        if isinstance(value, Sourced):
            return value
        if self.output_sources is None:
            return Sourced(value, frozenset({tool_source(self.name)}))
        return Sourced(value, self.output_sources)

    def with_examples(self, examples: Iterable[ToolExampleLike]) -> Tool:
        """A copy of this tool with these examples added (each checked against the schema).

        Raises:
            ConfigError: an example is malformed or its arguments do not fit the tool.
        """
        added = tuple(_example(self, i, e) for i, e in enumerate(examples, len(self.examples)))
        return replace(self, examples=(*self.examples, *added))

    def key_for(self, arguments: Mapping[str, Any]) -> str | None:
        """The idempotency key of a call with these (model-written) arguments, if any."""
        if self.idempotency_key is None:
            return None
        return str(self.idempotency_key(self.validate(arguments)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        """Whether the wrapped function is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def spec(self) -> ToolSpec:
        """The tool as a model sees it (built once: checking the schema is not free)."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def renamed(self, name: str) -> Tool:
        """A copy of this tool under another name (for namespacing)."""
        _check_name(name)
        return replace(self, name=name)

    def validate(self, arguments: Mapping[str, Any] | str) -> dict[str, Any]:
        """Check model-written arguments against the schema and convert them.

        Args:
            arguments: a dict, or the JSON text of one.

        Returns:
            Keyword arguments for the function (pydantic-typed parameters become
            model instances).

        Raises:
            ToolArgumentError: the arguments are not JSON, not an object, or do
                not match the schema; the message lists every problem.
        """
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as e:
                raise ToolArgumentError(self.name, f"not valid JSON ({e.msg})") from e
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(self.name, "arguments must be a JSON object")
        try:
            parsed = self.args_model.model_validate(dict(arguments))
        except ValidationError as e:
            raise ToolArgumentError(self.name, _describe(e)) from e
        # A field's alias is the argument's own name where that name cannot be a
        # pydantic field (a JSON Schema property such as ``_class``).
        return {
            field.alias or name: getattr(parsed, name)
            for name, field in type(parsed).model_fields.items()
        }

    async def acall(self, arguments: Mapping[str, Any] | str) -> Any:
        """Validate ``arguments`` and run the tool; sync functions run on a worker thread.

        Sync functions run on :data:`~plait.tools._threads.SYNC_TOOLS`, daemon
        threads of their own; one whose caller gave up (timed out, cancelled)
        is abandoned there and cannot block other work or the process's exit.
        """
        return await self.acall_validated(self.validate(arguments))

    async def acall_validated(self, kwargs: dict[str, Any]) -> Any:
        """Run the tool on arguments :meth:`validate` returned, without checking them again.

        The tool runner validates a call once (and reports bad arguments in its
        own words) before calling this.
        """
        if self.is_async:
            return await self.fn(**kwargs)
        # A sync tool must not block the event loop other agents share, nor take
        # threads of the default executor that other work needs (see _threads).
        result = await SYNC_TOOLS.run(self.fn, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def _example(owner: Tool, index: int, example: Any) -> ToolExample:
    where = f"tool {owner.name!r}, example {index + 1}"
    if isinstance(example, ToolExample):
        request, arguments = example.request, example.arguments
    elif isinstance(example, Mapping):
        unknown = sorted(set(example) - {"request", "arguments"})
        if unknown or "request" not in example:
            raise ConfigError(
                f"{where}: an example mapping needs 'request' and optionally 'arguments'"
                + (f" (unknown keys: {', '.join(unknown)})" if unknown else "")
            )
        request, arguments = example["request"], example.get("arguments", {})
    elif isinstance(example, tuple) and len(example) == 2:
        request, arguments = example
    else:
        raise ConfigError(
            f"{where}: expected a ToolExample, a mapping or a (request, arguments) pair, "
            f"got {type(example).__name__}"
        )
    if not isinstance(request, str) or not request.strip():
        raise ConfigError(f"{where}: the request must be a non-empty string")
    if not isinstance(arguments, Mapping):
        raise ConfigError(f"{where}: the arguments must be a mapping")
    try:
        owner.validate(dict(arguments))
    except ToolArgumentError as e:
        raise ConfigError(f"{where}: the arguments do not fit the tool ({e.problems})") from e
    return ToolExample(request=request, arguments=dict(arguments))


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(arguments)"
        message = str(item["msg"])
        if not item["loc"] and message.startswith("Value error, "):
            # A whole-object check (a JSON-Schema adapter) already names each place.
            lines.append(message.removeprefix("Value error, "))
        else:
            lines.append(f"{where}: {message}")
    return "; ".join(lines)


def _check_name(name: str) -> None:
    if not re.match(_NAME_PATTERN, name):
        raise ConfigError(
            f"tool name {name!r} is not allowed: use letters, digits, '_', '.', '-' "
            "(at most 64 characters, not starting with a digit)"
        )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    tags: Iterable[str] = (),
    idempotency_key: Callable[[dict[str, Any]], str] | bool | None = None,
    pure: bool = False,
    sources: Iterable[Source | str] | None = None,
    examples: Iterable[ToolExampleLike] = (),
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    tags: Iterable[str] = (),
    idempotency_key: Callable[[dict[str, Any]], str] | bool | None = None,
    pure: bool = False,
    sources: Iterable[Source | str] | None = None,
    examples: Iterable[ToolExampleLike] = (),
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool`; use as ``@tool`` or ``@tool(name=...)``.

    The JSON Schema comes from the type hints (pydantic models included), the
    description from the docstring's text and each argument's description from
    its ``Args:`` entry. Every parameter needs a type hint; ``*args`` and
    ``**kwargs`` are refused because a model cannot fill them reliably.

    Args:
        fn: the function (sync or async).
        name: the tool's name (default: the function's name).
        description: overrides the docstring's description.
        timeout_s: a per-tool time limit overriding the runtime's default.
        tags: labels for filtering toolsets.
        idempotency_key: marks a side-effecting tool: a function from the
            validated arguments to a key, or ``True`` for a key derived from all
            arguments. A call whose key was already completed returns the
            stored result instead of running again (see ``EagerExecutor``).
        pure: the result derives only from the arguments (adds no source of
            its own, so it is as trusted as what went in).
        sources: where results come from (``["web"]``, ``["mcp:docs"]``);
            default: ``tool:<name>``, untrusted. A tool may also return
            :class:`~plait.provenance.Sourced` to name them per call.
        examples: worked examples, each a :class:`ToolExample`, a mapping
            ``{"request": ..., "arguments": {...}}`` or a ``(request, arguments)``
            pair; agents show the ones most similar to a request to the model.

    Raises:
        ConfigError: a parameter has no type hint, is variadic, the name is
            invalid, or an example's arguments do not fit the schema.
    """
    example_list = list(examples)
    if pure and sources is not None:
        raise ConfigError("give either pure=True or sources=, not both")
    output: frozenset[Source] | None = frozenset() if pure else None
    if sources is not None:
        output = frozenset(s if isinstance(s, Source) else parse_source(s) for s in sources)

    def wrap(function: Callable[..., Any]) -> Tool:
        built = _build(function, name, description, timeout_s, frozenset(tags))
        if output is not None:
            built = replace(built, output_sources=output)
        if idempotency_key is True:
            built = replace(built, idempotency_key=_arguments_key)
        elif callable(idempotency_key):
            built = replace(built, idempotency_key=idempotency_key)
        return built.with_examples(example_list) if example_list else built

    return wrap(fn) if fn is not None else wrap


def _build(
    fn: Callable[..., Any],
    name: str | None,
    description: str | None,
    timeout_s: float | None,
    tags: frozenset[str],
) -> Tool:
    tool_name: str = name or str(getattr(fn, "__name__", ""))
    _check_name(tool_name)
    doc = parse_docstring(inspect.getdoc(fn))
    where = f"tool {tool_name!r} ({getattr(fn, '__qualname__', fn)!r})"
    try:
        hints = get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as e:
        raise ConfigError(f"cannot read the type hints of {where}: {e}") from e
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"{where} takes *{param.name}; tools need named parameters only")
        if param.name not in hints:
            raise ConfigError(f"parameter {param.name!r} of {where} has no type hint")
        default = ... if param.default is param.empty else param.default
        info = Field(default, description=doc.args.get(param.name) or None)
        fields[param.name] = (hints[param.name], info)
    # Extra keys are an error the model should hear about, not silently dropped.
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    try:
        model = create_model(f"{tool_name}_arguments", __config__=config, **fields)
        schema = _clean_schema(model.model_json_schema())
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build a JSON Schema for {where}: {e}") from e
    return Tool(
        name=tool_name,
        description=description if description is not None else doc.description,
        parameters=schema,
        fn=fn,
        args_model=model,
        timeout_s=timeout_s,
        tags=tags,
    )


def _arguments_key(arguments: dict[str, Any]) -> str:
    """A key standing for every argument's value."""
    text = json.dumps(_plain(arguments), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def json_schema_of(type_: Any) -> dict[str, Any]:
    """A self-contained JSON Schema for a type (a pydantic model, ``list[int]``, ...).

    References are inlined and titles dropped, so the schema can be embedded
    inside another one (a response schema inside a tool-call envelope).
    """
    from pydantic import TypeAdapter

    return _clean_schema(TypeAdapter(type_).json_schema(), object_root=False)


def _clean_schema(schema: dict[str, Any], *, object_root: bool = True) -> dict[str, Any]:
    """Inline ``$ref``s and drop titles.

    Backends embed a tool's schema inside bigger schemas (the local backend's
    tool-call envelope), where a root-relative ``#/$defs/..`` would point to the
    wrong place; titles only cost prompt tokens.
    """
    defs = schema.pop("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.removeprefix("#/$defs/")
                if key in seen:
                    raise ValueError(f"recursive type {key!r} cannot be a tool argument")
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return resolve({**defs[key], **extra}, (*seen, key))
            return {
                k: resolve(v, seen)
                for k, v in node.items()
                if not (k == "title" and isinstance(v, str))
            }
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    cleaned: dict[str, Any] = resolve(schema, ())
    if object_root:
        cleaned.setdefault("properties", {})
    return cleaned


def render_result(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, Sourced):
        value = value.value
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
