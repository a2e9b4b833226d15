"""Plain-text views of sessions, plans, traces and stats, as the REPL prints them.

Every function returns a string so the views are testable without a terminal.
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from plait.agents import ToolVote, Trace
from plait.backends import Backend, LocalBackend, WrappedBackend
from plait.graphs import Plan, Round
from plait.memory import RecallResult
from plait.tools import SelectionDecision

from ._session import ReplSession

__all__ = [
    "render_agents",
    "render_backends",
    "render_last",
    "render_memories",
    "render_plan",
    "render_round",
    "render_selection",
    "render_vote",
    "render_stats",
    "render_tools",
    "short",
]


def short(value: Any, limit: int = 80) -> str:
    """``value`` on one line, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_agents(session: ReplSession) -> str:
    lines = []
    for name, agent in session.agents.items():
        mark = "*" if name == session.current else " "
        tools = ", ".join(agent.tools.names) or "no tools"
        lines.append(f"{mark} {name}  ({agent.backend.name}; {tools})")
    return "\n".join(lines)


def render_tools(session: ReplSession, name: str = "") -> str:
    """All tools one per line, or one tool's description and parameters."""
    if name:
        spec = session.tools[name].spec
        params = json.dumps(spec.parameters.get("properties", {}), ensure_ascii=False)
        return f"{spec.name}: {spec.description}\nparameters: {params}"
    if not len(session.tools):
        return "this session has no tools"
    width = max(len(n) for n in session.tools.names)
    return "\n".join(
        f"{t.name.ljust(width)}  {short(t.spec.description, 70)}" for t in session.tools
    )


def render_backends(session: ReplSession) -> str:
    lines = [f"session: {session.source}"]
    for name, backend in session.backends.items():
        lines.append(f"{name}: {_describe_backend(backend)}")
    return "\n".join(lines)


def _local_engine(backend: Backend) -> LocalBackend | None:
    """The local backend under any wrappers (a workflow's meters), if there is one."""
    while isinstance(backend, WrappedBackend):
        backend = backend.wrapped
    return backend if isinstance(backend, LocalBackend) else None


def _describe_backend(backend: Backend) -> str:
    caps = backend.capabilities
    features = [
        label
        for label, on in (
            ("native tool calls", caps.native_tool_calls),
            ("JSON-schema output", caps.json_schema_output),
            ("prefix cache", caps.prefix_cache),
            ("embeddings", caps.embeddings),
        )
        if on
    ]
    where = ""
    model_path = getattr(backend, "model_path", None)
    if model_path is not None:
        where = f", model {model_path.name}"
    return f"{type(backend).__name__}{where}; " + (", ".join(features) or "no native features")


def render_plan(plan: Plan) -> str:
    """The DAG as an indented tree: a task sits one level below its deepest dependency."""
    graph = plan.graph()
    depth: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        depth[node] = 1 + max((depth[p] for p in graph.predecessors(node)), default=-1)
    lines = [f"plan: {len(plan.tasks)} task(s), up to {plan.width()} at once"]
    for task in sorted(plan.tasks, key=lambda t: (depth[t.id], _order(t.id))):
        args = ", ".join(f"{k}={short(v, 40)}" for k, v in task.args.items())
        after = sorted(task.dependencies, key=_order)
        needs = f"  <- after {', '.join(after)}" if after else ""
        lines.append(f"{'  ' * (depth[task.id] + 1)}{task.id}. {task.tool}({args}){needs}")
    return "\n".join(lines)


def _order(task_id: str) -> tuple[int, str]:
    return (int(task_id), "") if task_id.isdigit() else (1 << 30, task_id)


def render_round(round_: Round) -> str:
    """What each task of a planner round returned, then the joiner's answer."""
    lines = []
    for task in round_.plan.tasks:
        outcome = round_.run.outcomes.get(task.id)
        if outcome is None:
            lines.append(f"  {task.id}. {task.tool}: not run")
        elif outcome.status == "done":
            lines.append(f"  {task.id}. {task.tool} -> {short(outcome.result)}")
        else:
            lines.append(f"  {task.id}. {task.tool}: {outcome.status}: {short(outcome.error)}")
    return "\n".join(lines)


def render_selection(decision: SelectionDecision) -> str:
    """A selection decision on one line: policy, the tool fixed or offered, top scores."""
    scores = ", ".join(f"{s.tool} {s.score:.3f}" for s in decision.scores[:3])
    what = f"fixed {decision.fixed}" if decision.fixed else "offered " + ", ".join(decision.offered)
    margin = f", margin {decision.margin:.3f}" if decision.margin is not None else ""
    return f"{decision.policy}: {what}{margin}" + (f" ({scores})" if scores else "")


def render_vote(vote: ToolVote) -> list[str]:
    """A turn's vote: k, agreement, the winner and why, then one line per candidate."""
    lines = [
        f"      vote: {vote.votes} of {vote.k} agree ({vote.agreement:.0%}), candidate "
        f"{vote.winner} won by {vote.reason} (grounding {vote.grounding:.2f})"
    ]
    for i, key in enumerate(vote.candidates):
        mark = "*" if i == vote.winner else " "
        lines.append(f"      {mark} {i}: {short(key, 90) if key else '(failed)'}")
    return lines


def render_last(last: Trace | Round | None) -> str:
    """The last run's steps: model turns and tool calls, or the planner's tasks."""
    if last is None:
        return "nothing has run yet"
    if isinstance(last, Round):
        lines = [f"planner round ({last.run.wall_s:.2f}s, joiner: {last.action})"]
        if last.selection is not None:
            lines.append(f"  tools: {render_selection(last.selection)}")
        for event in last.run.events:
            took = f" in {event.duration_s:.2f}s" if event.duration_s is not None else ""
            error = f": {short(event.error)}" if event.error else ""
            lines.append(f"  {event.at:6.2f}s  {event.task_id}. {event.tool} {event.kind}{took}")
            lines[-1] += error
        return "\n".join(lines)
    lines = [
        f"agent {last.agent}: {last.steps} model turn(s), {len(last.tool_calls)} tool call(s), "
        f"{last.duration_s:.2f}s, stopped: {last.stop_reason}"
    ]
    calls_by_step: dict[int, list[str]] = {}
    for call in last.tool_calls:
        outcome = short(call.result)
        if call.error:
            outcome = f"error {call.error}: {short(call.result, 50)}"
        calls_by_step.setdefault(call.step, []).append(
            f"      tool {call.name}({short(call.arguments, 50)}) -> {outcome}"
        )
    for turn in last.turns:
        u = turn.usage
        said = (
            "calls " + ", ".join(c.name for c in turn.tool_calls)
            if turn.tool_calls
            else f"says {short(turn.text, 50)!r}"
        )
        lines.append(
            f"  step {turn.step} [{turn.role} on {turn.backend}] {said}  "
            f"({u.prompt_tokens} prompt, {u.cached_prompt_tokens} cached, "
            f"{u.generated_text()}, {turn.duration_s:.2f}s)"
        )
        if turn.selection is not None and turn.selection.policy != "model":
            lines.append(f"      tools: {render_selection(turn.selection)}")
        if turn.vote is not None:
            lines.extend(render_vote(turn.vote))
        lines.extend(calls_by_step.pop(turn.step, []))
    for rest in calls_by_step.values():
        lines.extend(rest)
    return "\n".join(lines)


def render_stats(session: ReplSession) -> str:
    """Session tallies (tokens, cached tokens, cost) and each backend's engine counters."""
    u = session.usage
    share = f" ({u.cached_prompt_tokens / u.prompt_tokens:.0%})" if u.prompt_tokens else ""
    lines = [
        f"runs: {session.runs}",
        f"tokens: {u.prompt_tokens} prompt, {u.cached_prompt_tokens} cached{share}, "
        f"{u.generated_text()}",
        f"cost: {session.cost:.6f}"
        + ("" if session.prices else " (no prices set: local models are free)"),
    ]
    for name, backend in session.backends.items():
        engine = _local_engine(backend)
        if engine is None:
            lines.append(f"{name}: no engine counters (not a local backend)")
            continue
        # The engine's own counters say whether it was used: a cancelled answer or a
        # failed turn used it too, though neither counts as a finished run.
        s = engine.stats()
        if s.requests == 0:
            lines.append(f"{name}: engine not used yet")
        else:
            reuse = s.reused_tokens / s.prompt_tokens if s.prompt_tokens else 0.0
            lines.append(
                f"{name}: {s.requests} requests, KV reuse {s.reused_tokens}/{s.prompt_tokens} "
                f"prompt tokens ({reuse:.0%}), {s.prefilled_tokens} prefilled, "
                f"{s.decode_tokens} decoded ({s.forced_tokens} forced, {s.drafted_tokens} "
                f"drafted, {s.accepted_tokens} accepted), "
                f"{s.mean_batch_sequences:.2f} sequences per batch, {s.evictions} evictions"
            )
    return "\n".join(lines)


def render_memories(result: RecallResult) -> str:
    if not result.memories and not result.rejected:
        return f"no memories match {result.query!r}"
    lines = []
    for i, m in enumerate(result.memories, 1):
        p = m.record.provenance
        lines.append(
            f"[{i}] {short(m.text, 70)}  (score {m.score:.2f}, {m.record.kind.value}, "
            f"by {p.writer}, {p.trust.value})"
        )
    for r in result.rejected:
        lines.append(f"held back by the guard: {short(r.record.text, 50)} ({r.reason})")
    return "\n".join(lines)
