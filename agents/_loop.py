"""One run of an agent: its state, and the tool loop that drives it to an answer.

The loop's steps live beside it, one job each: :mod:`._turns` (which turn comes
next), :mod:`._model_turn` (the model call and its trace entry),
:mod:`._tool_round` (the calls through the tool runner), :mod:`._answer`
(validation and re-asks), :mod:`._run_reads` (provenance), :mod:`._run_memory`
and :mod:`._run_limits`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from plait import tracing
from plait._span_attributes import agent_attributes, usage_attributes
from plait.completions import Completion
from plait.errors import ConfigError
from plait.messages import Message, SystemMessage, UserMessage
from plait.tools import ToolRunner, json_schema_of

from ._answer import accept_answer
from ._prompts import render, system_prompt
from ._run_limits import RunLimits, _LimitReached
from ._run_memory import recall_for_prompt, remember
from ._run_reads import RunReads
from ._tool_round import call_tools
from ._trace import AgentEvent, AgentResult, RunFinished, StopReason, Trace
from ._turns import next_turn, take_turn

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["AgentRun"]


class AgentRun:
    """The state of one agent run; :meth:`events` drives it.

    Every ``Agent.arun`` and ``Agent.stream`` call makes its own, so concurrent
    runs of one agent share its configuration (and memory), never run state.
    """

    def __init__(self, agent: Agent[Any], task: str, runner: ToolRunner) -> None:
        self.agent = agent
        self.task = task
        self.runner = runner
        self.limits = RunLimits(agent.limits)
        self.trace = Trace(agent=agent.name)
        self.messages: list[Message] = []
        self.output: Any = None
        self.text = ""
        self.tool_rounds = 0
        self.invalid_calls = 0
        self.repairs = 0
        self.adapter = TypeAdapter(agent.output_type) if agent.output_type is not None else None
        self.schema = json_schema_of(agent.output_type) if agent.output_type is not None else None
        # Plan-then-execute: the untrusted results the model never reads (see _quarantine).
        self.reads = RunReads(
            quarantine=agent.mode == "plan_then_execute", withheld=self.trace.withheld
        )

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Run to the end, yielding events; the last one is :class:`RunFinished`."""
        started = time.perf_counter()
        self.limits.start()
        reason: StopReason = "done"
        with tracing.span(
            f"invoke_agent {self.agent.name}", agent_attributes(self.agent.name, self.task)
        ) as span:
            try:
                await self._start()
                async for event in self._loop():
                    yield event
            except _LimitReached as stop:
                reason = stop.reason
            span.set_attributes(
                {
                    **usage_attributes(self.trace.usage),
                    "plait.agent.steps": self.trace.steps,
                    "plait.agent.stop_reason": reason,
                }
            )
        self.trace.messages = list(self.messages)
        self.trace.sources = frozenset(self.reads.sources)
        self.trace.duration_s = time.perf_counter() - started
        self.trace.stop_reason = reason
        if reason == "done":
            await remember(self.agent, self.task, self.text, self.trace, self.reads)
        result = AgentResult(
            output=self.output if reason == "done" else None,
            text=self.text,
            stop_reason=reason,
            trace=self.trace,
        )
        yield RunFinished(result)

    async def _start(self) -> None:
        """The first messages: the system prompt, then the task with its recalled notes."""
        caps = self.agent.backend.capabilities
        if self.agent.tools and not (caps.native_tool_calls or caps.json_schema_output):
            raise ConfigError(
                f"agent {self.agent.name!r} has tools but backend {self.agent.backend.name!r} "
                "can neither call tools natively nor constrain its output to JSON"
            )
        extra = ""
        if self.schema is not None and not caps.json_schema_output:
            extra = render("output_format", schema=json.dumps(self.schema))
        system = system_prompt(
            self.agent.shared_context, self.agent.name, self.agent.instructions, extra
        )
        self.messages = [SystemMessage(content=system)]
        # Recalled memories are specific to this task, so they follow the shared
        # system part and precede only the task itself.
        task = self.task
        recall = await recall_for_prompt(self.agent, self.task, self.limits, self.reads)
        if recall is not None and recall.recalled:
            listed = "\n".join(f"- {n.text}" for n in recall.recalled)
            task = render("memories", memories=listed, task=self.task)
        self.trace.memory = recall
        self.messages.append(UserMessage(content=task))

    async def _loop(self) -> AsyncIterator[AgentEvent]:
        """Model turns until an answer is accepted (a limit or an error ends it sooner)."""
        while True:
            # 1. Who answers next, offered which tools.
            turn = await next_turn(self)
            # 2. The model call, its text streaming out as it comes.
            completion: Completion | None = None
            async for item in take_turn(self, turn):
                if isinstance(item, Completion):
                    completion = item
                else:
                    yield item
            assert completion is not None  # a model turn ends with its completion
            # 3. Tool calls: run them, and the model reads their results next turn.
            if completion.tool_calls:
                self.limits.check_tokens(self.trace.usage)
                async for event in call_tools(self, completion):
                    yield event
                continue
            # 4. An answer: accepted, or re-asked with what was wrong.
            if accept_answer(self, completion.text):
                return
