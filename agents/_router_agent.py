"""``RouterAgent``: picks which agent (not which model) handles a request, with reasons.

The choice is a structured answer whose ``agent`` field is constrained to the
registered names (an enum in the JSON Schema, so a grammar-constrained local
model cannot name an agent that does not exist). The decision, with its reason,
is kept in the result and in ``RouterAgent.decisions``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from plait._sync import run_sync
from plait.backends import Backend
from plait.errors import ConfigError

from ._agent import Agent
from ._prompts import render
from ._runnable import Runnable, by_name
from ._team_trace import TeamDecision

__all__ = ["AgentChoice", "RoutedResult", "RouterAgent"]


class AgentChoice(BaseModel):
    """Which agent, and why."""

    model_config = ConfigDict(frozen=True)

    agent: str
    reason: str = Field(default="", max_length=300)


@dataclass(frozen=True)
class RoutedResult:
    """The chosen agent's result plus the routing decision.

    Attributes:
        output: the chosen agent's output.
        text: its text.
        stop_reason: its stop reason.
        choice: which agent and why.
        decision: the decision as recorded in the trace.
        result: the chosen agent's own result (trace included).
    """

    output: Any
    text: str
    stop_reason: str
    choice: AgentChoice
    decision: TeamDecision
    result: Any

    @property
    def ok(self) -> bool:
        return self.stop_reason == "done"


class RouterAgent:
    """Routes each task to one of several agents, chosen by a model, and runs it.

    Args:
        name: the router's name.
        backend: the model that chooses.
        agents: the candidates (agents, supervisors, ensembles); their
            instructions are what the model chooses on.
        instructions: how this router describes itself to planners.
        max_decisions: how many decisions ``decisions`` keeps.
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        agents: Sequence[Runnable],
        *,
        instructions: str = "",
        max_decisions: int = 1000,
    ) -> None:
        if len(agents) < 1:
            raise ConfigError(f"router agent {name!r} needs at least one agent to route to")
        self.name = name
        self.instructions = instructions or "Routes each request to the best suited agent."
        self.backend = backend
        self.agents = by_name(f"router agent {name!r}", agents)
        names = list(self.agents)
        self.decisions: deque[TeamDecision] = deque(maxlen=max_decisions)
        # agent first: small models then commit to a name before writing the reason.
        self._choice_type = create_model(
            "AgentChoiceOut",
            __config__=ConfigDict(frozen=True),
            agent=(Literal[tuple(names)], ...),  # type: ignore[arg-type]
            reason=(str, Field(default="", max_length=300)),
        )

    async def choose(self, task: str) -> AgentChoice:
        """Ask the model which agent should handle ``task``; the decision is recorded."""
        listing = "\n".join(
            f"- {n}: {a.instructions.strip()[:200]}" for n, a in self.agents.items()
        )
        chooser = Agent(
            self.name,
            render("router_agent", listing=listing),
            self.backend,
            output_type=self._choice_type,
            temperature=0.0,
        )
        result = await chooser.arun(task)
        if result.output is None:
            raise ConfigError(
                f"router agent {self.name!r} got no choice from {self.backend.name!r}"
                f" (stopped: {result.stop_reason})"
            )
        picked: Any = result.output
        choice = AgentChoice(agent=picked.agent, reason=picked.reason)
        self.decisions.append(
            TeamDecision(kind="route", by=self.name, subject=choice.agent, detail=choice.reason)
        )
        return choice

    async def arun(self, task: str) -> RoutedResult:
        """Choose an agent for ``task`` and run it."""
        choice = await self.choose(task)
        result = await self.agents[choice.agent].arun(task)
        return RoutedResult(
            output=result.output,
            text=result.text,
            stop_reason=result.stop_reason,
            choice=choice,
            decision=self.decisions[-1],
            result=result,
        )

    def run(self, task: str) -> RoutedResult:
        """Blocking :meth:`arun`, for code that has no event loop running."""
        return run_sync(self.arun(task), name="RouterAgent.run()", instead="await router.arun()")
