"""The command layer: one line of input in, output and session changes out.

Terminal concerns (prompt, history, completion, Ctrl-C) live in ``_app``; this
module only needs a text stream, so every command is testable without a tty.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from plait.agents import (
    RunFinished,
    TextDelta,
    ToolFinished,
    ToolStarted,
    check_tool_sampling,
    resolve_tool_sampling,
)
from plait.errors import ConfigError, PlaitError, is_control_flow

from ._render import (
    render_agents,
    render_backends,
    render_last,
    render_memories,
    render_plan,
    render_round,
    render_stats,
    render_tools,
    short,
)
from ._session import PendingPlan, ReplSession, load_session

__all__ = ["COMMANDS", "Command", "Shell", "did_you_mean"]

Completes = Literal["agents", "tools", "paths", "none"]


@dataclass(frozen=True)
class Command:
    """A slash command: its name, argument synopsis, help line and what its argument completes."""

    name: str
    synopsis: str
    help: str
    completes: Completes = "none"


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("/agents", "", "list the agents (* marks the one you talk to)"),
        Command("/tools", "[TOOL]", "list the tools, or show one tool's parameters", "tools"),
        Command("/use", "AGENT", "talk to another agent", "agents"),
        Command("/plan", "QUESTION", "let the planner write a plan and show it; /run runs it"),
        Command("/run", "", "run the plan shown by /plan, then answer"),
        Command("/memory", "QUERY", "search the session's memory"),
        Command("/stats", "", "tokens, cached tokens, cost, and the local engine's KV reuse"),
        Command("/trace", "", "the last run's steps"),
        Command(
            "/sampling", "[K]", "candidates per tool call of this agent, voted on (1: no vote)"
        ),
        Command("/load", "FILE", "switch to the agents of a workflow file", "paths"),
        Command("/backend", "", "the backends of this session"),
        Command("/help", "", "this help"),
        Command("/quit", "", "leave (Ctrl-D works too)"),
    )
}

HELP_FOOTER = """\
Plain text goes to the current agent; its answer streams as it is written.
A line ending in a backslash continues on the next line (Esc then Enter also
inserts a line break). Tab completes commands, agent and tool names.
Ctrl-C cancels a running answer or plan; Ctrl-D or /quit leaves."""


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` — did you mean 'x'?`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" — did you mean {close[0]!r}?" if close else ""


class Shell:
    """Runs REPL lines against a session and prints to ``out``.

    Args:
        session: what the lines talk to.
        out: where output goes (default: standard output).
        loader: builds the session for ``/load FILE``.
    """

    def __init__(
        self,
        session: ReplSession,
        out: TextIO | None = None,
        loader: Callable[[Path], ReplSession] = load_session,
    ) -> None:
        self.session = session
        self.out = out or sys.stdout
        self.loader = loader
        self._handlers: dict[str, Callable[[str], Awaitable[bool]]] = {
            "/agents": self._agents,
            "/tools": self._tools,
            "/use": self._use,
            "/plan": self._plan,
            "/run": self._run,
            "/memory": self._memory,
            "/stats": self._stats,
            "/trace": self._trace,
            "/sampling": self._sampling,
            "/load": self._load,
            "/backend": self._backend,
            "/help": self._help,
            "/quit": self._quit,
        }

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def error(self, message: str) -> None:
        """Print an error as one line; the session goes on."""
        self.say("error: " + " ".join(message.split()))

    async def handle(self, line: str) -> bool:
        """Run one line; return ``False`` when the REPL should end.

        Errors from plait (bad input, a failing model or tool) are printed as
        one line and the session continues. Cancellation propagates.
        """
        text = line.strip()
        if not text:
            return True
        try:
            if text.startswith("/"):
                name, _, arg = text.partition(" ")
                handler = self._handlers.get(name)
                if handler is None:
                    hint = did_you_mean(name, list(COMMANDS))
                    self.error(f"unknown command {name!r}{hint} (/help lists them)")
                    return True
                return await handler(arg.strip())
            await self.ask(text)
        except PlaitError as e:
            self.error(str(e))
        return True

    async def ask(self, text: str) -> None:
        """Send ``text`` to the current agent, streaming its answer and tool calls."""
        agent = self.session.agent
        at_line_start, streamed = True, False
        async for event in agent.stream(text):
            if isinstance(event, TextDelta):
                self.say(event.delta, end="")
                streamed = True
                at_line_start = event.delta.endswith("\n")
            elif isinstance(event, ToolStarted):
                if not at_line_start:
                    self.say()
                self.say(f"  [{event.call.name} {short(event.call.arguments, 60)}]", end="")
                at_line_start = False
            elif isinstance(event, ToolFinished):
                record = event.record
                self.say(f" -> {short(record.result, 60)}" + (" (error)" if record.error else ""))
                at_line_start = True
            elif isinstance(event, RunFinished):
                result = event.result
                if not at_line_start:
                    self.say()
                if not streamed and result.text:
                    # Some backends answer without streaming deltas; show the answer anyway.
                    self.say(result.text)
                self.session.record_trace(result.trace)
                u = result.usage
                stopped = "" if result.ok else f", stopped: {result.stop_reason}"
                self.say(
                    f"[{agent.name}: {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} "
                    f"cached), {u.completion_tokens} generated, "
                    f"{result.trace.duration_s:.1f}s{stopped}]"
                )

    async def _agents(self, _arg: str) -> bool:
        self.say(render_agents(self.session))
        return True

    async def _tools(self, arg: str) -> bool:
        if arg and arg not in self.session.tools:
            hint = did_you_mean(arg, self.session.tools.names)
            raise ConfigError(f"unknown tool {arg!r}{hint}")
        self.say(render_tools(self.session, arg))
        return True

    async def _use(self, arg: str) -> bool:
        if not arg:
            raise ConfigError("/use needs an agent name: " + ", ".join(self.session.agents))
        if arg not in self.session.agents:
            names = list(self.session.agents)
            hint = did_you_mean(arg, names)
            raise ConfigError(f"unknown agent {arg!r}{hint} (agents: {', '.join(names)})")
        self.session.current = arg
        self.say(f"now talking to {arg}")
        return True

    async def _plan(self, arg: str) -> bool:
        if not arg:
            raise ConfigError("/plan needs a question, e.g. /plan what is 17 * 23?")
        if self.session.planner is None:
            raise ConfigError("this session has no planner (it has no tools to plan over)")
        compiler = self.session.planner()
        plan, usage = await compiler.aplan(arg)
        self.session.record(usage, compiler.planner.name)
        self.session.pending = PendingPlan(question=arg, plan=plan, compiler=compiler)
        self.say(render_plan(plan))
        self.say("/run runs it")
        return True

    async def _run(self, _arg: str) -> bool:
        pending = self.session.pending
        if pending is None:
            raise ConfigError("no plan to run: write one with /plan QUESTION first")
        round_ = await pending.compiler.aexecute(pending.question, pending.plan)
        self.session.pending = None
        self.session.record(round_.usage, pending.compiler.joiner.name)
        self.session.runs += 1
        self.session.last = round_
        self.say(render_round(round_))
        self.say(round_.answer)
        if round_.action == "replan":
            self.say("(the joiner was not satisfied with these results; try /plan again)")
        return True

    async def _memory(self, arg: str) -> bool:
        memory = self.session.memory
        if memory is None:
            raise ConfigError("this session has no memory (load a workflow that declares one)")
        if not arg:
            raise ConfigError("/memory needs a query, e.g. /memory deadlines")
        self.say(render_memories(await memory.recall(arg, k=5)))
        return True

    async def _stats(self, _arg: str) -> bool:
        self.say(render_stats(self.session))
        return True

    async def _trace(self, _arg: str) -> bool:
        self.say(render_last(self.session.last))
        return True

    async def _sampling(self, arg: str) -> bool:
        agent = self.session.agent
        if arg:
            try:
                k = int(arg)
            except ValueError:
                raise ConfigError(
                    f"/sampling needs a whole number of candidates, got {arg!r}"
                ) from None
            agent.tool_sampling = check_tool_sampling(k, "/sampling")
        k = resolve_tool_sampling(agent.tool_sampling, agent.backend)
        default = "" if agent.tool_sampling is not None else " (the backend's default)"
        self.say(f"{agent.name} draws {k} candidate(s) per tool call{default}")
        return True

    async def _load(self, arg: str) -> bool:
        if not arg:
            raise ConfigError("/load needs a workflow file, e.g. /load examples/research.yaml")
        path = Path(arg.strip("'\"")).expanduser()
        try:
            session = self.loader(path)
        except PlaitError:
            raise
        except Exception as e:  # a bug while loading: the session goes on, as it was
            if is_control_flow(e):
                raise
            self.error(
                f"cannot load {path}: internal error {type(e).__name__}: {e} "
                "(a bug in plait; please report it with the file that caused it)"
            )
            return True
        self.session = session
        self.say(f"loaded {path}: agents {', '.join(self.session.agents)}")
        return True

    async def _backend(self, _arg: str) -> bool:
        self.say(render_backends(self.session))
        return True

    async def _help(self, _arg: str) -> bool:
        width = max(len(f"{c.name} {c.synopsis}") for c in COMMANDS.values())
        for c in COMMANDS.values():
            self.say(f"  {f'{c.name} {c.synopsis}'.ljust(width)}  {c.help}")
        self.say(HELP_FOOTER)
        return True

    async def _quit(self, _arg: str) -> bool:
        return False
