"""``ReplSession``: what a REPL works with (agents, tools, backends, memory, planner), tallies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.agents import Agent, Trace
from plait.backends import Backend
from plait.backends.routing import Price, backend_price
from plait.completions import Usage
from plait.errors import ConfigError
from plait.graphs import LLMCompiler, Plan, Round, load_workflow, task_runner
from plait.memory import Memory
from plait.prompts import load_prompt
from plait.tools import Toolset, calculator

__all__ = ["PendingPlan", "ReplSession", "default_session", "load_session", "workflow_session"]

PlannerFactory = Callable[[], LLMCompiler]
"""Builds the planner that ``/plan`` and ``/run`` use (a fresh one per plan)."""


@dataclass
class PendingPlan:
    """A plan shown by ``/plan`` and waiting for ``/run``."""

    question: str
    plan: Plan
    compiler: LLMCompiler


@dataclass
class ReplSession:
    """Everything one REPL session works with, plus what it has spent so far.

    Build one with :func:`default_session` (the embedded model), with
    :func:`workflow_session` (a YAML workflow), or by hand for your own agents.

    Args:
        agents: the agents plain text can be sent to, by name.
        tools: the tools (shown by ``/tools``; the default planner plans over them).
        backends: the named backends (``/backend`` and ``/stats`` report on them).
        memory: the memory ``/memory`` searches (``None``: the session has none).
        planner: builds the planner for ``/plan`` (``None``: planning is off).
        prices: what each backend charges, by backend name (unlisted: free).
        source: where the session came from, for the banner and ``/backend``.
        current: the agent plain text goes to (default: the first agent).

    Attributes:
        usage: tokens over every run in this session.
        cost: what those runs cost, by ``prices``.
        runs: finished runs.
        last: the last run's trace (an agent's) or round (the planner's).
        pending: the plan waiting for ``/run``.
    """

    agents: dict[str, Agent[Any]]
    tools: Toolset
    backends: dict[str, Backend]
    memory: Memory | None = None
    planner: PlannerFactory | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)
    source: str = "custom session"
    current: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    runs: int = 0
    last: Trace | Round | None = None
    pending: PendingPlan | None = None

    def __post_init__(self) -> None:
        if not self.agents:
            raise ConfigError(f"a REPL session needs at least one agent ({self.source})")
        if not self.current:
            self.current = next(iter(self.agents))
        elif self.current not in self.agents:
            raise ConfigError(f"the current agent {self.current!r} is not one of the agents")

    @property
    def agent(self) -> Agent[Any]:
        """The agent plain text goes to."""
        return self.agents[self.current]

    def record(self, usage: Usage, backend: str) -> None:
        """Add one model request's tokens (and their price) to the session's tallies."""
        self.usage = self.usage + usage
        self.cost += backend_price(backend, self.prices).cost(usage)

    def record_trace(self, trace: Trace) -> None:
        """Tally an agent run turn by turn (turns may use different backends)."""
        for turn in trace.turns:
            self.record(turn.usage, turn.backend)
        self.runs += 1
        self.last = trace


def _assistant_instructions() -> str:
    return load_prompt(__package__ or __name__, "assistant")


def default_session(backend: Backend | None = None) -> ReplSession:
    """An "assistant" agent with the calculator, and a planner over the same tools.

    Args:
        backend: the model (default: the embedded local model, loaded on first use).
    """
    if backend is None:
        from plait.backends import LocalBackend

        backend = LocalBackend()
    tools = Toolset([calculator])
    assistant: Agent[str] = Agent("assistant", _assistant_instructions(), backend, tools=tools)

    def planner() -> LLMCompiler:
        specs, runner = task_runner(tools)
        return LLMCompiler(backend, specs, runner, max_replans=0)

    return ReplSession(
        agents={"assistant": assistant},
        tools=tools,
        backends={backend.name: backend},
        planner=planner,
        source=f"default session on {backend.name}",
    )


def workflow_session(path: Path) -> ReplSession:
    """A session over the agents, tools, backends and memory of a YAML workflow.

    Raises:
        ConfigError: the workflow is invalid.
    """
    workflow = load_workflow(path)
    servers = [name for name, entry in workflow.spec.tools.items() if hasattr(entry, "mcp")]
    if servers:
        # Their tools are listed when a run starts; a session here would lack them.
        raise ConfigError(
            f"plait repl does not start MCP servers yet ({path}: tools {', '.join(servers)}); "
            "use 'plait run' or 'plait mcp' for this file"
        )
    tools: Toolset = workflow.tools
    agents: dict[str, Agent[Any]] = dict(workflow.agents)
    backends: dict[str, Backend] = dict(workflow.backends)
    if not backends:
        backends = {a.backend.name: a.backend for a in agents.values()}
    # The workflow's own planner backend when it names one, else the first declared.
    named = getattr(workflow.spec.workflow, "backend", None)
    planner_backend = backends.get(named) if named else None
    planner_backend = planner_backend or next(iter(backends.values()))
    if not agents:
        # A planner-only workflow declares no agents: talk to an assistant over
        # its tools, on the first backend it declares.
        agents["assistant"] = Agent(
            "assistant", _assistant_instructions(), planner_backend, tools=tools
        )

    def planner() -> LLMCompiler:
        specs, runner = task_runner(tools)
        return LLMCompiler(planner_backend, specs, runner, max_replans=0)

    return ReplSession(
        agents=agents,
        tools=tools,
        backends=backends,
        memory=workflow.memory,
        planner=planner if len(tools) else None,
        source=str(path),
    )


def load_session(path: Path) -> ReplSession:
    """The session for ``plait repl FILE`` and ``/load FILE``.

    Raises:
        ConfigError: the file is missing, not a workflow, or invalid.
    """
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"cannot load {path}: expected a YAML workflow file (.yaml or .yml)")
    if not path.is_file():
        raise ConfigError(f"cannot load {path}: no such file")
    return workflow_session(path)
