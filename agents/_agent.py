"""``Agent``: a named role with instructions, a backend, tools, memory and an output type."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from plait._sync import run_sync
from plait.backends import Backend
from plait.backends.routing import CostLedger, Price, backend_price
from plait.chat import ToolChoice
from plait.completions import Usage
from plait.errors import ConfigError
from plait.memory import AgentMemoryView, Memory, TeamMemory
from plait.policies import Policy, PolicySet
from plait.tools import (
    Permissions,
    Tool,
    ToolLimits,
    ToolRetriever,
    ToolRunner,
    ToolSelection,
    Toolset,
)

from ._loop import AgentRun
from ._memory import AgentMemory, MemoryBinding, bind_memory
from ._tool_vote import check_tool_sampling
from ._trace import AgentEvent, AgentResult, RunFinished

__all__ = ["Agent", "AgentLimits", "AgentMode", "Roles"]

OutputT = TypeVar("OutputT")

AgentMode = Literal["default", "plan_then_execute"]
"""How an agent treats untrusted tool results: ``default`` shows them to the
model; ``plan_then_execute`` withholds them (the model passes them on by
reference), see :class:`Agent`."""


@dataclass(frozen=True)
class AgentLimits:
    """When a run must stop; hitting one ends it with ``stop_reason`` set to its name.

    Attributes:
        max_steps: model turns per run.
        max_tokens: prompt plus completion tokens over the whole run.
        timeout_s: wall-clock seconds per run (``None``: no limit).
        max_turn_tokens: completion tokens one model turn may generate.
        output_retries: re-asks after an answer that does not validate
            against the output type (then :class:`~plait.errors.ModelOutputError`).
        argument_retries: tool calls with invalid arguments tolerated per run
            (then :class:`~plait.errors.ToolArgumentError`).
    """

    max_steps: int = 8
    max_tokens: int = 20_000
    timeout_s: float | None = 120.0
    max_turn_tokens: int = 512
    output_retries: int = 2
    argument_retries: int = 3

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_tokens < 1 or self.max_turn_tokens < 1:
            raise ConfigError(f"AgentLimits need positive step and token limits; got {self}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"AgentLimits.timeout_s must be positive; got {self.timeout_s}")
        if self.output_retries < 0 or self.argument_retries < 0:
            raise ConfigError(f"AgentLimits retries cannot be negative; got {self}")


@dataclass(frozen=True)
class Roles:
    """Backends for the planner/caller/summarizer split ("Small LLMs Are Weak Tool Learners").

    Each step the planner decides (JSON: ``next`` and ``plan``) whether a tool
    is needed; the caller turns the plan into tool calls; the summarizer writes
    the final answer. Any role left ``None`` uses the agent's own backend.
    """

    planner: Backend | None = None
    caller: Backend | None = None
    summarizer: Backend | None = None


class Agent(Generic[OutputT]):
    """A named role that answers tasks with a model, tools and (optionally) memory.

    The prompt is laid out shared-part-first: ``shared_context`` (text every
    agent of a team shares), then this agent's name and instructions, then the
    task, so prefix caches (local KV sharing or a server's) hit across agents.

    Args:
        name: the agent's name (in prompts, traces and permissions).
        instructions: what this agent does and how.
        backend: the model.
        tools: tools, functions or toolsets it may use.
        output_type: a pydantic model (or any type pydantic validates) the final
            answer must match; ``None`` for plain text.
        memory: recalls notes before a task and remembers the answer after: a
            :class:`~plait.memory.Memory`, a :class:`~plait.memory.TeamMemory`
            (used through this agent's view), a :class:`MemoryBinding` to
            choose how, or any :class:`AgentMemory`.
        shared_context: team-wide text placed before the instructions.
        limits: step, token and time limits.
        tool_limits: timeout, output size and concurrency of tool calls.
        permissions: which agent may use which tool.
        tool_choice: tool choice for the first model turn (``"required"`` or a
            tool name forces a call); later turns use ``"auto"``.
        max_tool_rounds: after this many rounds of tool calls the model must
            answer (tools are withheld); ``None``: no such limit.
        retriever: offer only the tools it selects per step (large toolsets).
        tool_selection: how each turn's tools are chosen: ``"model"`` (the model
            chooses among all), ``"embedding"`` (the embedder fixes the tool when
            confident; the model fills its arguments), ``"hybrid"`` (the
            embedder shortlists, the model chooses), or a
            :class:`~plait.tools.ToolSelection`. ``None``: on backends without
            native tool calls (small local models) ``embedding`` with the best
            tool always fixed (what measured best), ``model`` otherwise.
            Each decision (scores, margin) is in the trace's turns.
        tool_sampling: candidates drawn for each turn that may call a tool
            after selection: k > 1 sends k requests at once (on the local
            engine one batch over the shared prompt), votes among their calls
            (canonicalised; ties go to the values the request states) and runs
            the winner; the vote is in the trace's turns. ``None``: the
            backend's default (:data:`~plait.agents._tool_vote.LOCAL_TOOL_SAMPLING`
            without native tool calls, else 1).
        roles: planner/caller/summarizer backends.
        temperature: sampling temperature for every turn (``None``: backend's).
        prices: what each backend charges, by backend name (a mapping, or the
            :class:`~plait.backends.routing.CostLedger` the routers share); a
            backend not listed is priced by its own ``price`` attribute if it
            has one, else free. The trace reports cost per turn and in total.
        policies: which sources may reach which tool
            (:class:`~plait.policies.Policy`); every tool call is checked
            against everything the run has read so far (task, memories, tool
            results), together with the policies of the executor task the
            agent runs in. A refused call does not run.
        mode: ``"plan_then_execute"`` keeps untrusted tool results away from
            the model's decisions: it reads a numbered placeholder instead of
            each result that derives from a low-trust source (and untrusted
            memory notes are left out of its prompt), passes such a result on
            by writing ``"$n"`` as an argument or ``$n`` in its answer, and the
            run fills it in afterwards. Each argument then carries the sources
            of exactly the results it references (plus what the model did
            read), so argument policies judge a recipient by where it came
            from, not by everything the run touched. Control flow that needs
            the content of untrusted data (pick the hotel a review praises)
            is out of reach in this mode, by design; a quarantined
            :func:`extraction_tool` turns such data into a typed value that
            stays withheld and tainted.
    """

    def __init__(
        self,
        name: str,
        instructions: str,
        backend: Backend,
        *,
        tools: Iterable[Tool | Callable[..., Any] | Toolset] = (),
        output_type: type[OutputT] | None = None,
        memory: AgentMemory | MemoryBinding | Memory | TeamMemory | AgentMemoryView | None = None,
        shared_context: str = "",
        limits: AgentLimits | None = None,
        tool_limits: ToolLimits | None = None,
        permissions: Permissions | None = None,
        tool_choice: ToolChoice = "auto",
        max_tool_rounds: int | None = None,
        retriever: ToolRetriever | None = None,
        tool_selection: ToolSelection | str | None = None,
        tool_sampling: int | None = None,
        roles: Roles | None = None,
        temperature: float | None = None,
        prices: Mapping[str, Price] | CostLedger | None = None,
        policies: PolicySet | Iterable[Policy] | None = None,
        mode: AgentMode = "default",
    ) -> None:
        if not name:
            raise ConfigError("an agent needs a non-empty name")
        if mode not in ("default", "plan_then_execute"):
            raise ConfigError(
                f"agent {name!r}: mode must be 'default' or 'plan_then_execute', got {mode!r}"
            )
        self.mode: AgentMode = mode
        self.name = name
        self.instructions = instructions
        self.backend = backend
        self.tools = tools if isinstance(tools, Toolset) else Toolset(tools)
        if retriever is not None and not self.tools:
            self.tools = retriever.tools
        self.output_type = output_type
        self.memory = bind_memory(memory, name)
        self.shared_context = shared_context
        self.limits = limits or AgentLimits()
        self.tool_limits = tool_limits or ToolLimits()
        self.permissions = permissions or Permissions()
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies or ())
        self.tool_choice = tool_choice
        self.max_tool_rounds = max_tool_rounds
        self.retriever = retriever
        self.tool_selection = (
            ToolSelection.of(tool_selection) if tool_selection is not None else None
        )
        self.tool_sampling = check_tool_sampling(tool_sampling, f"agent {name!r}")
        self.roles = roles
        self.temperature = temperature
        self.prices: Mapping[str, Price] = (
            prices.prices if isinstance(prices, CostLedger) else dict(prices or {})
        )
        for backend_name, price in self.prices.items():
            if not isinstance(price, Price):
                raise ConfigError(
                    f"agent {name!r}: the price of backend {backend_name!r} must be a "
                    f"plait.backends.routing.Price, got {type(price).__name__}"
                )
        if tool_choice not in ("auto", "none", "required") and tool_choice not in self.tools:
            raise ConfigError(f"agent {name!r}: tool_choice {tool_choice!r} names no tool it has")

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, backend={self.backend.name!r}, tools={self.tools.names})"

    def price_of(self, backend: Backend) -> Price | None:
        """Deprecated: ``plait.backends.routing.backend_price(backend, agent.prices)``."""
        _deprecated("Agent.price_of(backend)", "backend_price(backend, agent.prices)")
        price = backend_price(backend, self.prices)
        return None if price == Price() else price

    def cost_of(self, backend: Backend, usage: Usage) -> float:
        """Deprecated: ``backend_price(backend, agent.prices).cost(usage)``."""
        _deprecated(
            "Agent.cost_of(backend, usage)", "backend_price(backend, agent.prices).cost(usage)"
        )
        return backend_price(backend, self.prices).cost(usage)

    def _new_run(self, task: str) -> AgentRun:
        runner = ToolRunner(self.tools, self.tool_limits, self.permissions, self.policies)
        return AgentRun(self, task, runner)

    async def arun(self, task: str) -> AgentResult[OutputT]:
        """Run the agent on ``task`` and return its result.

        Raises:
            ModelOutputError: the answer did not match ``output_type`` after the
                allowed re-asks.
            ToolArgumentError: the model kept calling tools with invalid arguments.
            BackendError: the backend failed.
        """
        result: AgentResult[OutputT] | None = None
        async for event in self._new_run(task).events():
            if isinstance(event, RunFinished):
                result = event.result
        assert result is not None  # every run ends with RunFinished
        return result

    def stream(self, task: str) -> AsyncIterator[AgentEvent]:
        """Run the agent, yielding text deltas and tool events, then ``RunFinished``."""
        return self._new_run(task).events()

    def run(self, task: str) -> AgentResult[OutputT]:
        """Blocking :meth:`arun`, for code that has no event loop running."""
        return run_sync(self.arun(task), name="Agent.run()", instead="await agent.arun()")


def _deprecated(old: str, new: str) -> None:
    # One pricing rule for every cost (plait.backends.routing): the agent's copy goes.
    warnings.warn(
        f"{old} is deprecated; use plait.backends.routing.{new}", DeprecationWarning, stacklevel=3
    )
