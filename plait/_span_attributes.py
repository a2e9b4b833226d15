"""The span attributes every layer writes: one home for their names and values.

Model calls, agent runs and tool calls are traced by several layers (the agent
loop, the LLMCompiler, the tool runtime); each builds its spans' attributes
here, so an OpenTelemetry backend and :mod:`plait.cli.report` see the same
names everywhere. Names follow the OpenTelemetry GenAI semantic conventions
(``gen_ai.*``); what they do not cover is ``plait.*``. ``None`` values are
dropped by the span, so a caller need not filter them.
"""

from __future__ import annotations

from typing import Any

from plait import tracing
from plait.chat import ChatRequest
from plait.completions import Completion, Usage
from plait.messages import ToolCall

__all__ = [
    "agent_attributes",
    "cache_attributes",
    "chat_attributes",
    "response_attributes",
    "tool_call_attributes",
    "tool_result_attributes",
    "usage_attributes",
]


def agent_attributes(agent: str, task: str) -> dict[str, Any]:
    """Attributes of an ``invoke_agent`` span, as it starts."""
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "plait.agent.task": tracing.content(task),
    }


def chat_attributes(backend_name: str, request: ChatRequest) -> dict[str, Any]:
    """Attributes of a ``chat`` span (one model call to ``backend_name``), as it starts."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": backend_name,
        "gen_ai.agent.name": request.agent,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.temperature": request.temperature,
        "plait.backend": backend_name,
        # Scheduling metadata (critical-path first); 0, neutral, is left out.
        "plait.request.priority": request.priority or None,
    }
    if tracing.enabled():  # serialising the prompt is the costly part: only when recorded
        attributes["gen_ai.input.messages"] = tracing.content(
            [m.model_dump(mode="json", exclude_none=True) for m in request.messages]
        )
    return attributes


def usage_attributes(usage: Usage) -> dict[str, Any]:
    """Token counts: of one model call, or summed over an agent run or a plan."""
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "plait.usage.cached_input_tokens": usage.cached_prompt_tokens,
        # Counted only where a local engine decoded (zero is left out, as None).
        "plait.usage.forced_output_tokens": usage.forced_tokens or None,
        "plait.usage.drafted_tokens": usage.drafted_tokens or None,
        "plait.usage.accepted_draft_tokens": usage.accepted_tokens or None,
    }


def response_attributes(completion: Completion) -> dict[str, Any]:
    """Attributes of a ``chat`` span once the model answered (usage included)."""
    return {
        "gen_ai.response.model": completion.model or None,
        "gen_ai.response.finish_reasons": [completion.finish_reason],
        **usage_attributes(completion.usage),
        "plait.tool_calls": [c.name for c in completion.tool_calls],
        "gen_ai.output.messages": tracing.content(completion.text) if completion.text else None,
        "plait.latency.first_token_s": completion.timings.first_token_s,
        # Seconds the engine kept the request waiting for a sequence (local engine).
        "plait.request.queue_wait_s": completion.timings.queue_wait_s,
    }


def tool_call_attributes(call: ToolCall, agent: str | None) -> dict[str, Any]:
    """Attributes of an ``execute_tool`` span, as it starts."""
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.name,
        "gen_ai.tool.call.id": call.id,
        "gen_ai.agent.name": agent,
        "gen_ai.tool.call.arguments": tracing.content(call.arguments),
    }


def tool_result_attributes(result: str) -> dict[str, Any]:
    """Attributes of an ``execute_tool`` span once the tool answered."""
    return {"gen_ai.tool.call.result": tracing.content(result)}


def cache_attributes(hit: bool, saved_cost: float | None = None) -> dict[str, Any]:
    """What a model-call cache did for a ``chat`` span's call (the cost a hit saved)."""
    return {"plait.cache.hit": hit, "plait.cache.saved_cost": saved_cost if hit else None}
