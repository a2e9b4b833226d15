"""One run of an agent: the tool loop, structured output, limits and the trace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from plait import tracing
from plait._span_attributes import (
    agent_attributes,
    chat_attributes,
    response_attributes,
    usage_attributes,
)
from plait.backends import Backend
from plait.chat import ChatRequest, ToolChoice
from plait.completions import Completion
from plait.errors import BackendProtocolError, ConfigError, ModelOutputError, ToolArgumentError
from plait.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from plait.provenance import (
    USER,
    Source,
    current,
    describe,
    memory_source,
    reading,
    untrusted,
)
from plait.tools import SelectionDecision, ToolOutcome, ToolRunner, Toolset, json_schema_of

from ._memory import MemoryBinding
from ._prompts import render, system_prompt
from ._quarantine import Quarantine
from ._request_priority import current_request_priority
from ._selection import one_call, resolve_selection, select_turn, settle_calls
from ._trace import (
    AgentEvent,
    AgentResult,
    MemoryRecall,
    ModelTurn,
    RecalledNote,
    Role,
    RunFinished,
    StopReason,
    TextDelta,
    ToolFinished,
    ToolRecord,
    ToolStarted,
    Trace,
)

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["Run"]

_PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"next": {"enum": ["call_tool", "answer"]}, "plan": {"type": "string"}},
    "required": ["next", "plan"],
}


class _Stop(Exception):
    """A limit was reached; the run ends with a result naming it.

    Limits are checked deep inside the run (every bounded await checks the
    deadline), so an exception is what carries the news up to :meth:`Run.events`,
    which catches it: it never leaves this module.
    """

    def __init__(self, reason: StopReason) -> None:
        self.reason = reason
        super().__init__(reason)


class Run:
    """The state of one run; :meth:`events` drives it.

    Every ``Agent.arun`` and ``Agent.stream`` call makes its own, so concurrent
    runs of one agent share its configuration (and memory), never run state.
    """

    def __init__(self, agent: Agent[Any], task: str, runner: ToolRunner) -> None:
        self.agent = agent
        self.task = task
        self.runner = runner
        self.limits = agent.limits
        self.trace = Trace(agent=agent.name)
        self.messages: list[Message] = []
        self.output: Any = None
        self.text = ""
        self.tool_rounds = 0
        self.invalid_calls = 0
        self.repairs = 0
        self.adapter = TypeAdapter(agent.output_type) if agent.output_type is not None else None
        self.schema = json_schema_of(agent.output_type) if agent.output_type is not None else None
        self._deadline: float | None = None
        # What the run has read, and how each source got here (for violations).
        # Inside an executor task the task's inputs' sources; else the user's.
        given = current()
        self.sources: set[Source] = set(given) if given is not None else {USER}
        self.trail: dict[Source, list[str]] = {s: ["task input"] for s in self.sources}
        # Plan-then-execute: the untrusted results the model never reads (see _quarantine).
        self.quarantine = Quarantine() if agent.mode == "plan_then_execute" else None

    # -- driving -------------------------------------------------------------

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Run to the end, yielding events; the last one is :class:`RunFinished`."""
        started = time.perf_counter()
        if self.limits.timeout_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self.limits.timeout_s
        reason: StopReason = "done"
        with tracing.span(
            f"invoke_agent {self.agent.name}", agent_attributes(self.agent.name, self.task)
        ) as span:
            try:
                await self._start()
                async for event in self._loop():
                    yield event
            except _Stop as stop:
                reason = stop.reason
            span.set_attributes(
                {
                    **usage_attributes(self.trace.usage),
                    "plait.agent.steps": self.trace.steps,
                    "plait.agent.stop_reason": reason,
                }
            )
        self.trace.messages = list(self.messages)
        self.trace.sources = frozenset(self.sources)
        self.trace.duration_s = time.perf_counter() - started
        self.trace.stop_reason = reason
        if reason == "done":
            await self._remember()
        result = AgentResult(
            output=self.output if reason == "done" else None,
            text=self.text,
            stop_reason=reason,
            trace=self.trace,
        )
        yield RunFinished(result)

    async def _start(self) -> None:
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
        recall = await self._recalled_for_prompt()
        if recall is not None and recall.recalled:
            listed = "\n".join(f"- {n.text}" for n in recall.recalled)
            task = render("memories", memories=listed, task=self.task)
        self.trace.memory = recall
        if recall is not None:
            namespace = self._memory_namespace()
            for note in recall.recalled:
                # A note without a trust level came from a plain store: untrusted.
                self._read(memory_source(namespace, note.trust or "low"), "recalled memory")
        self.messages.append(UserMessage(content=task))

    async def _recalled_for_prompt(self) -> MemoryRecall | None:
        """Recall, keeping untrusted notes out of the prompt in plan-then-execute mode."""
        recall = await self._recall()
        if recall is None or self.quarantine is None:
            return recall
        namespace = self._memory_namespace()
        kept = []
        for note in recall.recalled:
            source = memory_source(namespace, note.trust or "low")
            if untrusted([source]):
                self.trace.withheld.append(f"memory note: {note.text[:80]} ({source})")
            else:
                kept.append(note)
        return recall.model_copy(update={"recalled": tuple(kept)})

    def _memory_namespace(self) -> str:
        memory = self.agent.memory
        inner = memory.memory if isinstance(memory, MemoryBinding) else memory
        return str(getattr(inner, "namespace", None) or self.agent.name)

    def _read(self, source: Source, how: str) -> None:
        if source not in self.sources:
            self.sources.add(source)
            self.trail[source] = [how]

    async def _remember(self) -> None:
        memory = self.agent.memory
        if isinstance(memory, MemoryBinding):
            recalled = [n.id for n in self.trace.memory.recalled] if self.trace.memory else []
            await memory.remember_run(
                self.agent.name,
                self.task,
                self.text,
                recalled,
                untrusted=bool(untrusted(self.sources)),
            )
        elif memory is not None:
            await memory.remember(
                f"Task: {self.task}\nAnswer: {self.text}", metadata={"agent": self.agent.name}
            )

    async def _recall(self) -> MemoryRecall | None:
        memory = self.agent.memory
        if memory is None:
            return None
        if isinstance(memory, MemoryBinding):
            recall: MemoryRecall | None = await self._bounded(memory.recall_traced(self.task))
            return recall
        started = time.perf_counter()
        notes = await self._bounded(memory.recall(self.task))
        return MemoryRecall(
            query=self.task,
            recalled=tuple(RecalledNote(text=n) for n in notes),
            duration_s=time.perf_counter() - started,
        )

    async def _loop(self) -> AsyncIterator[AgentEvent]:
        while True:
            tools = await self._offered_tools()
            may_call = bool(tools) and (
                self.agent.max_tool_rounds is None or self.tool_rounds < self.agent.max_tool_rounds
            )
            role: Role = "agent"
            backend = self.agent.backend
            choice: ToolChoice = self.agent.tool_choice if self.tool_rounds == 0 else "auto"
            extra: list[Message] = []
            roles = self.agent.roles
            plan = ""
            if roles is not None:
                wants_tool = False
                if may_call:
                    wants_tool, plan = await self._plan(roles.planner or backend)
                if wants_tool:
                    role, backend, choice = "caller", roles.caller or backend, "required"
                    extra = [UserMessage(content=render("caller", plan=plan))]
                else:
                    role, backend, may_call = "summarizer", roles.summarizer or backend, False
                    extra = [UserMessage(content=render("summarizer"))]
            if not may_call:
                choice = "none" if tools else "auto"
            decision: SelectionDecision | None = None
            call_prompt = ""
            # Selection ranks against the task, so it decides the first round and
            # the caller's turns (ranked against the planner's plan); later rounds
            # of a plain agent see every tool, or a multi-step task could never
            # reach its second tool.
            if may_call and (self.tool_rounds == 0 or role == "caller"):
                query = plan if role == "caller" and plan else self.task
                selection = resolve_selection(self.agent.tool_selection, backend)
                turn = await self._bounded(select_turn(selection, query, tools, choice))
                tools, choice, decision = turn.tools, turn.choice, turn.decision
                call_prompt = turn.prompt
            schema = self.schema if self.agent.backend.capabilities.json_schema_output else None
            request = self._request(
                extra,
                tools=tools,
                choice=choice,
                schema=schema,
                tail=call_prompt,
                one_call=bool(call_prompt) and one_call(decision, self.task),
            )
            completion: Completion | None = None
            async for item in self._model_turn(backend, request, role, decision):
                if isinstance(item, Completion):
                    completion = item
                else:
                    yield item
            assert completion is not None  # a model turn ends with its completion
            if call_prompt and decision is not None:
                completion = settle_calls(decision, self.task, tools, completion)
            if completion.tool_calls:
                self._check_tokens()
                async for event in self._call_tools(completion):
                    yield event
                continue
            self.text = self._fill(completion.text)
            if self._accept(self.text, completion.text):
                return

    # -- model turns -----------------------------------------------------------

    def _request(
        self,
        extra: Sequence[Message],
        *,
        tools: Toolset | None = None,
        choice: ToolChoice = "auto",
        schema: dict[str, Any] | None = None,
        tail: str = "",
        one_call: bool = False,
    ) -> ChatRequest:
        """The next request of this run: its messages so far, then ``extra``.

        ``tail`` joins the last user message (a user turn of its own only when
        the conversation does not end with one): two user turns in a row make
        a small model repeat its call.
        """
        messages = [*self.messages, *extra]
        if tail:
            last = messages[-1] if messages else None
            if isinstance(last, UserMessage):
                messages[-1] = last.model_copy(update={"content": f"{last.content}\n\n{tail}"})
            else:
                messages.append(UserMessage(content=tail))
        return ChatRequest(
            messages=tuple(messages),
            tools=tools.specs if tools is not None else (),
            tool_choice=choice,
            # A fixed tool for a request naming one item: one call, so the
            # model cannot repeat it until the token limit cuts the reply off.
            parallel_tool_calls=False if one_call else None,
            response_schema=schema,
            max_tokens=self.limits.max_turn_tokens,
            temperature=self.agent.temperature,
            agent=self.agent.name,
            priority=current_request_priority(),
        )

    async def _model_turn(
        self,
        backend: Backend,
        request: ChatRequest,
        role: Role,
        selection: SelectionDecision | None = None,
    ) -> AsyncIterator[TextDelta | Completion]:
        """One model call: its text deltas as they stream, then its completion, last."""
        if self.trace.steps >= self.limits.max_steps:
            raise _Stop("max_steps")
        self._check_tokens()
        step = self.trace.steps + 1
        started = time.perf_counter()
        completion: Completion | None = None
        attributes = {
            **chat_attributes(backend.name, request),
            "plait.agent.step": step,
            "plait.agent.role": role,
        }
        if selection is not None:
            attributes["plait.tool_selection.policy"] = selection.policy
            attributes["plait.tool_selection.offered"] = list(selection.offered)
            if selection.fixed is not None:
                attributes["plait.tool_selection.fixed"] = selection.fixed
            if selection.margin is not None:
                attributes["plait.tool_selection.margin"] = selection.margin
        timed_out = False
        # The backend sees what the run has read (a model-call cache stores it
        # with the answer, so a replayed answer keeps its provenance).
        with reading(self.sources), tracing.span(f"chat {backend.name}", attributes) as span:
            chunks = backend.stream(request)
            try:
                while completion is None:
                    try:
                        chunk = await asyncio.wait_for(anext(chunks), self._remaining())
                    except StopAsyncIteration:
                        break
                    except (TimeoutError, _Stop):
                        timed_out = True
                        break
                    if chunk.delta:
                        yield TextDelta(step=step, delta=chunk.delta)
                    completion = chunk.completion
            finally:
                await chunks.aclose()
            if timed_out:
                # Recorded here, not by the stop signal passing through the span:
                # the trace names the limit, never the loop's private exception.
                span.set("error.type", "timeout")
                span.fail(f"timeout: agent {self.agent.name!r} reached its time limit mid-turn")
            elif completion is None:
                # The backend broke its protocol (no model output is at fault), as
                # Backend.complete() reports the same case.
                raise BackendProtocolError(
                    f"backend {backend.name!r} ended its stream without a completion"
                )
            else:
                span.set_attributes(response_attributes(completion))
        if timed_out:
            raise _Stop("timeout")
        assert completion is not None  # a stream without one raised ModelOutputError above
        for source in completion.sources:  # a cached answer: what its first caller had read
            self._read(source, "cached model reply")
        cost = self.agent.cost_of(backend, completion.usage)
        self.trace.usage = self.trace.usage + completion.usage
        self.trace.cost += cost
        self.trace.turns.append(
            ModelTurn(
                step=step,
                role=role,
                backend=backend.name,
                text=completion.text,
                tool_calls=completion.tool_calls,
                offered_tools=tuple(t.name for t in request.tools),
                selection=selection,
                finish_reason=completion.finish_reason,
                usage=completion.usage,
                cost=cost,
                duration_s=time.perf_counter() - started,
            )
        )
        yield completion

    async def _plan(self, planner: Backend) -> tuple[bool, str]:
        """Ask the planner whether to call a tool next; return that and its plan.

        The plan also joins the run's messages, for the turns that follow.
        """
        schema = _PLAN_SCHEMA if planner.capabilities.json_schema_output else None
        request = self._request([UserMessage(content=render("planner"))], schema=schema)
        # The planner's deltas are not part of the answer: only its completion counts.
        text = ""
        async for item in self._model_turn(planner, request, "planner"):
            if isinstance(item, Completion):
                text = item.text
        try:
            decision = json.loads(text)
            wants_tool = decision.get("next") == "call_tool"
            plan = str(decision.get("plan", ""))
        except (json.JSONDecodeError, AttributeError):
            # A planner without JSON output: its text is the plan; go on with tools
            # only until the first results are in.
            wants_tool = self.tool_rounds == 0
            plan = text
        if plan:
            self.messages.append(AssistantMessage(content=f"Plan: {plan}"))
        return wants_tool, plan

    # -- tools -----------------------------------------------------------------

    async def _offered_tools(self) -> Toolset:
        allowed = self.runner.allowed(self.agent.name)
        retriever = self.agent.retriever
        if retriever is None or len(allowed) <= retriever.k:
            return allowed
        query = " ".join(
            [self.task, *(getattr(m, "content", None) or "" for m in self.messages[-2:])]
        )
        selected = await self._bounded(retriever.select(query))
        return selected.filter(predicate=lambda t: t.name in allowed)

    async def _call_tools(self, completion: Completion) -> AsyncIterator[AgentEvent]:
        step = self.trace.steps
        self.messages.append(completion.message)
        for call in completion.tool_calls:
            yield ToolStarted(step=step, call=call)
        calls, carried = self._resolve(completion.tool_calls, step)
        outcomes = await self._bounded(
            self.runner.run_all(
                calls,
                agent=self.agent.name,
                sources=self.sources,
                trail=self.trail,
                argument_sources=carried,
            )
        )
        for outcome in outcomes:
            if outcome.violation is not None:
                self.trace.violations.append(outcome.violation)
            record = _record(step, outcome)
            self.trace.tool_calls.append(record)
            self.messages.append(self._admit(outcome, carried.get(outcome.call.id), step))
            yield ToolFinished(step=step, record=record)
        self.tool_rounds += 1
        bad = [o for o in outcomes if o.error in ("arguments", "unknown_tool")]
        self.invalid_calls += len(bad)
        if bad and self.invalid_calls > self.limits.argument_retries:
            raise ToolArgumentError(
                bad[-1].call.name,
                f"{bad[-1].content} (agent {self.agent.name!r} made {self.invalid_calls} "
                f"invalid tool calls; the limit is {self.limits.argument_retries})",
            )

    def _resolve(
        self, calls: Sequence[ToolCall], step: int
    ) -> tuple[list[ToolCall], dict[str, dict[str, frozenset[Source]]]]:
        """The calls with references to withheld results filled in, and what each argument
        carries (plan-then-execute; in the default mode the calls as made)."""
        if self.quarantine is None:
            return list(calls), {}
        resolved: list[ToolCall] = []
        carried: dict[str, dict[str, frozenset[Source]]] = {}
        for call in calls:
            try:
                arguments = call.parsed_arguments()
            except ModelOutputError:
                resolved.append(call)  # the runner reports the bad JSON
                continue
            filled = self.quarantine.resolve(arguments)
            if not filled.references:
                resolved.append(call)
                continue
            text = json.dumps(filled.arguments, ensure_ascii=False)
            resolved.append(call.model_copy(update={"arguments": text}))
            carried[call.id] = filled.sources
            for name, numbers in filled.references.items():
                refs = ", ".join(f"${n}" for n in numbers)
                for source in filled.sources[name]:
                    self.trail.setdefault(source, [f"{refs} passed to {call.name} (step {step})"])
        return resolved, carried

    def _admit(
        self,
        outcome: ToolOutcome,
        carried: dict[str, frozenset[Source]] | None,
        step: int,
    ) -> ToolMessage:
        """What the model reads of a result; the run reads its sources (or withholds them)."""
        how = f"{outcome.call.name} result (step {step})"
        if self.quarantine is None:
            for source in outcome.sources:
                self._read(source, how)
            return outcome.message
        # A result derives from the tool and from what its arguments carried in.
        sources = outcome.sources.union(*(carried or {}).values())
        number, placeholder = self.quarantine.admit(outcome.call.name, outcome.content, sources)
        if placeholder is None:
            for source in sources:
                self._read(source, how)
            return outcome.message
        bad = untrusted(sources)
        for source in bad:
            self.trail.setdefault(source, [f"{how}, withheld as ${number}"])
        self.trace.withheld.append(f"${number}: {how} ({describe(bad)})")
        return outcome.message.model_copy(update={"content": placeholder})

    # -- output ----------------------------------------------------------------

    def _fill(self, text: str) -> str:
        """The answer with the withheld results it references written in (plan-then-execute)."""
        if self.quarantine is None or not self.quarantine.withheld:
            return text
        if self.adapter is not None:
            # Structured: fill inside the parsed values, so a result's quotes and
            # newlines cannot break the JSON.
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return text  # validation reports it and asks again
            filled = self.quarantine.resolve({"answer": parsed})
            added = filled.sources.get("answer", frozenset())
            text = json.dumps(filled.arguments["answer"], ensure_ascii=False)
        else:
            text, added = self.quarantine.fill_answer(text)
        for source in added:
            self._read(source, "withheld result written into the answer")
        return text

    def _accept(self, text: str, written: str) -> bool:
        """Validate the final answer; queue a re-ask and return False when it does not fit.

        ``written`` is the answer as the model wrote it (before withheld results
        were filled in): a re-ask shows it that, never what it did not read.
        """
        if self.adapter is None:
            self.output = text
            return True
        try:
            self.output = self.adapter.validate_json(text)
            return True
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(answer)'}: {err['msg']}"
                for err in e.errors()
            )
        self.repairs += 1
        if self.repairs > self.limits.output_retries:
            raise ModelOutputError(
                f"agent {self.agent.name!r}: the answer does not match "
                f"{getattr(self.agent.output_type, '__name__', 'the output type')} after "
                f"{self.limits.output_retries} re-ask(s) ({problems})",
                raw=text,
            )
        self.messages.append(AssistantMessage(content=written))
        self.messages.append(
            UserMessage(
                content=render("output_repair", problems=problems, schema=json.dumps(self.schema))
            )
        )
        return False

    # -- limits ----------------------------------------------------------------

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise _Stop("timeout")
        return left

    async def _bounded(self, awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self._remaining())
        except TimeoutError:
            raise _Stop("timeout") from None

    def _check_tokens(self) -> None:
        if self.trace.usage.total_tokens >= self.limits.max_tokens:
            raise _Stop("max_tokens")


def _record(step: int, outcome: ToolOutcome) -> ToolRecord:
    return ToolRecord(
        step=step,
        call_id=outcome.call.id,
        name=outcome.call.name,
        arguments=outcome.call.arguments,
        result=outcome.content,
        error=outcome.error,
        duration_s=outcome.duration_s,
        truncated=outcome.truncated,
    )
