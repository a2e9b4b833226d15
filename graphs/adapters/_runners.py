"""Task runners: what executes a plan's tasks — tools, agents, or both.

Agents are tasks like tools: a multi-agent workflow and its tool calls share one
scheduler. An agent task takes one argument, ``task`` (what to do), and its
result is the agent's output (the typed output when it has one, else its text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from plait import provenance
from plait.agents import Runnable
from plait.chat import ToolSpec
from plait.errors import PlanError, ToolError
from plait.provenance import Source, Sourced, agent_source
from plait.tools import Permissions, Tool, ToolLimits, ToolRunner, Toolset

from ..dag import IdempotencyKey, Task, TaskRunner

__all__ = ["agent_spec", "idempotency_keys", "task_runner"]


def agent_spec(agent: Runnable) -> ToolSpec:
    """How an agent appears to a planner: a tool taking one ``task`` string."""
    first_line = agent.instructions.strip().splitlines()[0] if agent.instructions.strip() else ""
    return ToolSpec(
        name=agent.name,
        description=f"Ask the {agent.name} agent. {first_line}".strip(),
        parameters={
            "type": "object",
            "properties": {"task": {"type": "string", "description": "what the agent should do"}},
            "required": ["task"],
        },
    )


def task_runner(
    tools: Toolset | Iterable[Tool] = (),
    agents: Iterable[Runnable] = (),
    *,
    limits: ToolLimits | None = None,
    permissions: Permissions | None = None,
    role: str | None = None,
) -> tuple[list[ToolSpec], TaskRunner]:
    """Specs to show a planner, and a runner executing tasks on these tools and agents.

    A tool task goes through a :class:`~plait.tools.ToolRunner` with ``limits``
    and ``permissions``, as an agent's tool call does (see
    :meth:`~plait.tools.ToolRunner.invoke`): arguments validated once (a bad
    argument fails the task with the reason), permission checked for
    ``role``, the tool's time limit, an ``execute_tool`` span. Its result is
    returned as the tool produced it, so ``$1`` can pass a number on as a
    number, unless its text is longer than ``limits.max_output_chars``: then
    the task's result is that text cut to the limit, with the marker an agent
    would read. Each result says where it came from
    (:class:`~plait.provenance.Sourced`): a tool's own sources, or for an agent
    ``agent:<name>`` and everything the agent read.

    Args:
        tools: the tools tasks may call.
        agents: the agents tasks may ask (each applies its own tool limits).
        limits: the time and output limits of tool tasks (default: the same
            :class:`~plait.tools.ToolLimits` an agent gets). Concurrency is the
            executor's (``max_concurrency``, ``tool_limits``).
        permissions: which tools ``role`` may use (default: every tool).
        role: who the plan's tool tasks call as, for ``permissions``
            (``None``: the permissions' default patterns).

    Raises:
        PlanError: a tool and an agent share a name.
    """
    toolset = tools if isinstance(tools, Toolset) else Toolset(tools)
    by_agent = {a.name: a for a in agents}
    clash = sorted(set(by_agent) & set(toolset.names))
    if clash:
        raise PlanError(f"{', '.join(clash)} is both a tool and an agent")
    pipeline = ToolRunner(toolset, limits, permissions)

    async def run(task: Task, args: dict[str, Any]) -> Any:
        agent = by_agent.get(task.tool)
        if agent is None:
            return await pipeline.invoke(
                task.tool, args, agent=role, sources=provenance.current(), call_id=task.id
            )
        result = await agent.arun(str(args.get("task", "")))
        # Agents, supervisors, ensembles and router agents all answer this way.
        if result.stop_reason != "done":
            raise ToolError(f"agent {agent.name!r} stopped early: {result.stop_reason}")
        output = result.output
        # Results must survive a durable store: typed outputs become JSON data.
        value = output.model_dump(mode="json") if isinstance(output, BaseModel) else output
        sources: frozenset[Source] = getattr(result, "sources", frozenset())
        return Sourced(value, frozenset(sources) | {agent_source(agent.name)})

    specs = [t.spec for t in toolset] + [agent_spec(a) for a in by_agent.values()]
    return specs, run


def idempotency_keys(tools: Toolset | Iterable[Tool]) -> IdempotencyKey:
    """The executor's ``idempotency`` hook for tools declared with ``@tool(idempotency_key=...)``.

    Tasks calling other tools (or agents) have no key. A key function that
    fails on bad arguments fails its task with the reason.
    """
    by_name = {t.name: t for t in tools}

    def key(task: Task, args: dict[str, Any]) -> str | None:
        found = by_name.get(task.tool)
        return None if found is None else found.key_for(args)

    return key
