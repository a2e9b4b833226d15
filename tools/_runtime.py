"""Running tool calls under limits: timeout, output size, concurrency and permissions.

Limits live here, in the runtime, so no tool has to enforce them itself. This
is the one tool pipeline: a model's calls (an agent turn) go through
:meth:`ToolRunner.run`, a plan's tool tasks through :meth:`ToolRunner.invoke`;
both look the tool up, check permission, validate the arguments once, check
policies, apply the time and output limits and record an ``execute_tool`` span.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from plait import tracing
from plait._span_attributes import tool_call_attributes, tool_result_attributes
from plait._tasks import gather_or_raise
from plait.errors import (
    ConfigError,
    ModelOutputError,
    PlaitError,
    PolicyViolation,
    RunError,
    ToolArgumentError,
    ToolError,
    ToolPermissionError,
    ToolTimeout,
    is_control_flow,
)
from plait.messages import ToolCall, ToolMessage
from plait.policies import Policy, PolicySet, Violation, active_policies, record_violation
from plait.provenance import Source, Sourced

from ._registry import Toolset
from ._tool import Tool, render_result

__all__ = ["Permissions", "ToolErrorKind", "ToolLimits", "ToolOutcome", "ToolRunner"]

ToolErrorKind = Literal["arguments", "unknown_tool", "permission", "policy", "timeout", "failed"]
"""Why a tool call produced an error instead of a result."""


@dataclass(frozen=True)
class ToolLimits:
    """Limits applied to every tool call.

    Attributes:
        timeout_s: seconds a call may run (a tool's own ``timeout_s`` wins). A
            sync tool that overruns is abandoned on its worker thread; the
            model gets a timeout error at once.
        max_output_chars: longer results are cut, with a marker saying how much.
        max_concurrency: calls running at the same time, per runner.
    """

    timeout_s: float = 30.0
    max_output_chars: int = 4000
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_output_chars < 1 or self.max_concurrency < 1:
            raise ConfigError(
                f"ToolLimits need a positive timeout, output size and concurrency; got {self}"
            )


@dataclass(frozen=True)
class Permissions:
    """Which agent may use which tool, as shell-style name patterns.

    ``Permissions({"researcher": ["web.*"], "coder": ["files.*", "calculator"]})``
    lets each agent use the tools its patterns match; agents not listed get
    ``default`` (everything, unless you say otherwise).

    Attributes:
        rules: agent name -> tool-name patterns it may use.
        default: patterns for agents without a rule.
    """

    rules: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default: Sequence[str] = ("*",)

    def allows(self, agent: str | None, tool_name: str) -> bool:
        """Whether ``agent`` may call ``tool_name``."""
        patterns = self.rules.get(agent, self.default) if agent is not None else self.default
        return any(fnmatchcase(tool_name, p) for p in patterns)

    def check(self, agent: str | None, tool_name: str) -> None:
        """Raise :class:`ToolPermissionError` unless ``agent`` may call ``tool_name``."""
        if not self.allows(agent, tool_name):
            raise ToolPermissionError(
                f"agent {agent!r} is not permitted to use tool {tool_name!r} "
                "(see the Permissions given to the agent or runner)"
            )


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call produced, for the model and for the trace.

    Attributes:
        call: the call as the model made it.
        content: the text the model reads (result or error).
        error: why it failed, or ``None`` on success.
        duration_s: wall-clock seconds spent.
        truncated: the result was cut to ``max_output_chars``.
        sources: where the result came from (the tool's own sources; what the
            caller had read before is the caller's to add).
        violation: the policy the call broke, when a policy refused it.
    """

    call: ToolCall
    content: str
    error: ToolErrorKind | None = None
    duration_s: float = 0.0
    truncated: bool = False
    sources: frozenset[Source] = frozenset()
    violation: Violation | None = None

    @property
    def message(self) -> ToolMessage:
        """The tool message to append to the conversation."""
        return ToolMessage(content=self.content, tool_call_id=self.call.id, name=self.call.name)


class ToolRunner:
    """Runs tool calls from a model: validates, checks permission, enforces limits.

    Failures a call has during the run do not raise out of :meth:`run`: bad
    arguments, unknown tools, refusals, timeouts, run-time errors
    (:class:`~plait.errors.RunError`) and a tool's own bugs become error text the
    model can react to. Control flow (cancellation, a LangGraph ``interrupt()``
    inside a tool) and usage errors (``ConfigError``, ``PlanError``: the setup is
    wrong, so every later call would fail too) propagate unchanged.

    Args:
        tools: the tools available.
        limits: timeout, output size and concurrency limits.
        permissions: who may use what (default: everyone may use everything).
        policies: which sources may reach which tool (checked before a call,
            together with the policies of the executor task the runner works
            in); a refused call does not run, its outcome says why.
    """

    def __init__(
        self,
        tools: Toolset | Iterable[Tool | Callable[..., Any]],
        limits: ToolLimits | None = None,
        permissions: Permissions | None = None,
        policies: PolicySet | Iterable[Policy] | None = None,
    ) -> None:
        self.tools = tools if isinstance(tools, Toolset) else Toolset(tools)
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies or ())
        self.limits = limits or ToolLimits()
        self.permissions = permissions or Permissions()
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _gate(self) -> asyncio.Semaphore:
        # One semaphore per event loop: sync helpers run each call in a fresh loop.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore = asyncio.Semaphore(self.limits.max_concurrency)
            self._loop = loop
        return self._semaphore

    def allowed(self, agent: str | None) -> Toolset:
        """The tools ``agent`` may use (what it should be shown)."""
        return self.tools.filter(predicate=lambda t: self.permissions.allows(agent, t.name))

    async def run_all(
        self,
        calls: Sequence[ToolCall],
        *,
        agent: str | None = None,
        sources: Iterable[Source] | None = None,
        trail: Mapping[Source, Sequence[str]] | None = None,
        argument_sources: Mapping[str, Mapping[str, Iterable[Source]]] | None = None,
    ) -> list[ToolOutcome]:
        """Run several calls concurrently (up to ``max_concurrency``), results in call order.

        ``argument_sources`` maps a call's id to what its arguments carry
        beyond ``sources`` (see :meth:`run`). What propagates out of one call
        (see the class) cancels the others.
        """
        read = None if sources is None else frozenset(sources)
        extra = argument_sources or {}
        return await gather_or_raise(
            self.run(c, agent=agent, sources=read, trail=trail, argument_sources=extra.get(c.id))
            for c in calls
        )

    def check(
        self,
        call: ToolCall,
        sources: Iterable[Source],
        *,
        agent: str | None = None,
        trail: Mapping[Source, Sequence[str]] | None = None,
        argument_sources: Mapping[str, Iterable[Source]] | None = None,
    ) -> list[Violation]:
        """The policies a call would break when its caller has read ``sources``.

        A model may copy anything it has read into any argument, so every
        argument carries all of ``sources``; ``argument_sources`` adds what
        one argument carries beyond that (a withheld result the run filled
        in for a reference, in an agent's plan-then-execute mode).
        """
        inherited = active_policies()
        policies = self.policies if inherited is None else self.policies + inherited
        if not policies or not policies.guards(call.name):
            return []
        try:
            arguments = call.parsed_arguments()
        except ModelOutputError:
            arguments = {}  # checked as a whole call; validation reports the JSON
        return _violations(policies, call.name, arguments, sources, agent, trail, argument_sources)

    async def invoke(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        agent: str | None = None,
        sources: Iterable[Source] | None = None,
        call_id: str | None = None,
    ) -> Sourced:
        """Run one call that code makes, not a model (a plan's tool task): its result as is.

        The steps of :meth:`run`, in its order: the tool must exist, ``agent``
        may use it (permissions), the arguments are validated once, the
        runner's own policies are checked against ``sources``, the time limit
        applies, and an ``execute_tool`` span records the call. What differs
        is what comes back:

        - failures raise (below) instead of becoming text, so the executor
          records a failed task, retries what its policy retries, and skips
          the dependants;
        - the result keeps its type, so ``$1`` passes a number on as a number,
          unless its text (what a model would read) is longer than
          ``max_output_chars``: then it is that text, cut to the limit with the
          truncation marker, exactly what an agent calling the tool reads.

        Two limits are not this method's: the policies of an enclosing executor
        (its gate checked them per argument before the task started) and
        ``max_concurrency`` (the executor schedules its tasks under its own
        ``max_concurrency`` and ``tool_limits``).

        Args:
            name: the tool.
            arguments: its arguments (a task's, references already resolved).
            agent: who is calling (the role permissions are checked for).
            sources: what the arguments derive from (the runner's policies).
            call_id: names the call on its span (a task id).

        Raises:
            ToolError: there is no such tool.
            ToolPermissionError: ``agent`` may not use it.
            ToolArgumentError: the arguments do not fit its schema.
            PolicyViolation: one of the runner's policies refuses the call.
            ToolTimeout: it ran past its time limit.
            Exception: whatever the tool raised, unchanged.
        """
        call = ToolCall(id=call_id or name, name=name, arguments=json.dumps(arguments, default=str))
        with tracing.span(f"execute_tool {name}", tool_call_attributes(call, agent)) as span:
            sourced, text = await self._invoked(name, arguments, agent, sources)
            span.set_attributes(tool_result_attributes(text))
        return sourced

    async def _invoked(
        self,
        name: str,
        arguments: Mapping[str, Any],
        agent: str | None,
        sources: Iterable[Source] | None,
    ) -> tuple[Sourced, str]:
        found = self.tools.get(name)
        if found is None:
            known = ", ".join(self.allowed(agent).names) or "(none)"
            raise ToolError(f"there is no tool {name!r}; tools: {known}")
        self.permissions.check(agent, name)
        kwargs = found.validate(arguments)
        if self.policies and self.policies.guards(name):
            violations = _violations(self.policies, name, arguments, sources or (), agent)
            if violations:
                for violation in violations:
                    record_violation(violation)
                    tracing.add_event("plait.policy.violation", {"error": violation.message})
                raise PolicyViolation(violations[0])
        timeout = found.timeout_s or self.limits.timeout_s
        try:
            async with asyncio.timeout(timeout) as limit:
                value = await found.acall_validated(kwargs)
        except TimeoutError as e:
            if not limit.expired():
                raise  # the tool's own TimeoutError (an upstream it waited for)
            raise ToolTimeout(name, timeout) from e
        sourced = found.sourced(value)
        text, truncated = _truncate(render_result(sourced.value), self.limits.max_output_chars)
        if truncated:
            return Sourced(text, sourced.sources), text
        return sourced, text

    async def run(
        self,
        call: ToolCall,
        *,
        agent: str | None = None,
        sources: Iterable[Source] | None = None,
        trail: Mapping[Source, Sequence[str]] | None = None,
        argument_sources: Mapping[str, Iterable[Source]] | None = None,
    ) -> ToolOutcome:
        """Run one call and return its outcome.

        Args:
            call: the call as the model made it.
            agent: who is calling (permissions).
            sources: what the caller has read so far; policies are checked
                against it before the call runs.
            trail: for each source, how it reached the caller (recorded with
                a violation).
            argument_sources: what single arguments carry beyond ``sources``
                (by argument name).
        """
        started = time.perf_counter()
        with tracing.span(f"execute_tool {call.name}", tool_call_attributes(call, agent)) as span:
            got = await self._attempt(call, agent, sources, trail, argument_sources)
            span.set_attributes(tool_result_attributes(got.content))
            if got.kind is not None:
                span.fail(f"{got.kind}: {got.content}")
        return ToolOutcome(
            call=call,
            content=got.content,
            error=got.kind,
            duration_s=time.perf_counter() - started,
            truncated=got.truncated,
            sources=got.sources,
            violation=got.violation,
        )

    async def _attempt(
        self,
        call: ToolCall,
        agent: str | None,
        sources: Iterable[Source] | None,
        trail: Mapping[Source, Sequence[str]] | None,
        argument_sources: Mapping[str, Iterable[Source]] | None = None,
    ) -> _Attempt:
        found = self.tools.get(call.name)
        if found is None:
            known = ", ".join(self.allowed(agent).names) or "(none)"
            text = f"Error: there is no tool {call.name!r}. Tools: {known}."
            return _Attempt("unknown_tool", text)
        try:
            self.permissions.check(agent, call.name)
        except ToolPermissionError as e:
            return _Attempt("permission", f"Error: {e}")
        try:
            kwargs = found.validate(call.arguments)  # the one check of these arguments
        except ToolArgumentError as e:
            return _Attempt("arguments", f"Error: {e}. Fix the arguments and call the tool again.")
        violations = self.check(
            call, sources or (), agent=agent, trail=trail, argument_sources=argument_sources
        )
        if violations:
            for violation in violations:
                record_violation(violation)
                tracing.add_event("plait.policy.violation", {"error": violation.message})
            # The call does not run, whatever the policy's action: an agent's turn
            # cannot wait for a reviewer, and a dropped call is still not made.
            return _Attempt("policy", f"Error: {violations[0].message}", violation=violations[0])
        timeout = found.timeout_s or self.limits.timeout_s
        own = found.sourced(None).sources  # a failure's text may quote what the tool read
        async with self._gate():
            try:
                async with asyncio.timeout(timeout):
                    value = await found.acall_validated(kwargs)
            except TimeoutError:
                text = f"Error: tool {call.name!r} timed out after {timeout:g} s."
                return _Attempt("timeout", text)
            except ToolPermissionError as e:
                return _Attempt("permission", f"Error: {e}")
            except ToolError as e:
                return _Attempt("failed", f"Error: {e}", sources=own)
            except RunError as e:  # e.g. a backend failing inside an agent used as a tool
                text = f"Error: tool {call.name!r} failed: {type(e).__name__}: {e}"
                return _Attempt("failed", text, sources=own)
            except Exception as e:  # a tool's own bug is news for the model, not a crash
                # ...but not a LangGraph interrupt or command (a tool may pause the
                # graph on purpose), and not a usage error: those are not failures
                # of this call. (Every RunError was caught above.)
                if is_control_flow(e) or isinstance(e, PlaitError):
                    raise
                text = f"Error: tool {call.name!r} failed: {type(e).__name__}: {e}"
                return _Attempt("failed", text, sources=own)
        sourced = found.sourced(value)
        text, truncated = _truncate(render_result(sourced.value), self.limits.max_output_chars)
        return _Attempt(None, text, truncated=truncated, sources=sourced.sources)


def _violations(
    policies: PolicySet,
    tool: str,
    arguments: Mapping[str, Any],
    sources: Iterable[Source],
    agent: str | None,
    trail: Mapping[Source, Sequence[str]] | None = None,
    argument_sources: Mapping[str, Iterable[Source]] | None = None,
) -> list[Violation]:
    """The policies a call of ``tool`` with these arguments breaks (:meth:`ToolRunner.check`)."""
    read = frozenset(sources)
    extra = {k: frozenset(v) for k, v in (argument_sources or {}).items()}
    per_argument = {k: read | extra.get(k, frozenset()) for k in arguments}
    carried = read.union(*extra.values())
    found = []
    for violation in policies.check(tool, per_argument, whole=read):
        first = next((s for s in sorted(carried, key=str) if str(s) in violation.offending), None)
        steps = list((trail or {}).get(first, ())) if first is not None else []
        path = (*steps, f"{tool} call")
        found.append(violation.model_copy(update={"agent": agent, "path": path}))
    return found


@dataclass(frozen=True, slots=True)
class _Attempt:
    kind: ToolErrorKind | None
    content: str
    truncated: bool = False
    sources: frozenset[Source] = frozenset()
    violation: Violation | None = None


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    dropped = len(text) - limit
    return f"{text[:limit]}\n[... truncated {dropped} more characters]", True
