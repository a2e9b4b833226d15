"""Memory for agents: tool specs (search / remember) and automatic recall into context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from plait.chat import ToolSpec
from plait.errors import ToolError

from ._memory import RecallResult
from ._records import MemoryRecord

__all__ = ["MemoryTools", "recall_block"]


class _Recaller(Protocol):
    async def recall(self, query: str, **options: Any) -> RecallResult: ...

    async def remember(self, text: str, **fields: Any) -> MemoryRecord: ...


class MemoryTools:
    """``memory_search`` and ``memory_remember`` as tools an agent runtime can offer.

    Args:
        memory: a :class:`Memory` or an agent's view of a team memory.
        agent: name written into provenance of records the agent stores.
        k: how many memories a search returns.
    """

    def __init__(self, memory: _Recaller, *, agent: str = "agent", k: int = 3) -> None:
        self.memory = memory
        self.agent = agent
        self.k = k
        self.last_recall: RecallResult | None = None

    @property
    def specs(self) -> tuple[ToolSpec, ToolSpec]:
        """The two tools, as the model sees them."""
        search = ToolSpec(
            name="memory_search",
            description="Search long-term memory for facts, past episodes and lessons.",
            parameters={
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        )
        remember = ToolSpec(
            name="memory_remember",
            description="Store a fact or insight in long-term memory for later runs.",
            parameters={
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "importance": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["text"],
            },
        )
        return search, remember

    async def call(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Run one tool call and return its result as text for the model.

        Raises:
            ToolError: unknown tool name or missing/wrong arguments.
        """
        if name == "memory_search":
            query = arguments.get("query")
            if not isinstance(query, str) or not query.strip():
                raise ToolError("memory_search needs a non-empty string argument 'query'")
            self.last_recall = await self.memory.recall(query, k=self.k)
            return self.last_recall.as_context() or "(no memories found)"
        if name == "memory_remember":
            text = arguments.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ToolError("memory_remember needs a non-empty string argument 'text'")
            importance = float(arguments.get("importance", 0.5))
            record = await self.memory.remember(text, importance=importance, writer=self.agent)
            return json.dumps({"stored": record.id, "trust": record.provenance.trust.value})
        raise ToolError(f"unknown memory tool {name!r}; known: memory_search, memory_remember")


async def recall_block(memory: _Recaller, task: str, *, k: int = 3) -> tuple[str, RecallResult]:
    """Recall for a task and render a system-prompt block (empty when nothing is found).

    Returns the block and the recall result, whose ``rejected`` list belongs in the
    agent's trace.
    """
    result = await memory.recall(task, k=k)
    if not result.memories:
        return "", result
    return "Relevant memories (may be incomplete or wrong):\n" + result.as_context(), result
