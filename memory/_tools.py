"""Memory for agents: search / remember as tools, and a recall block for prompts.

:func:`memory_tools` builds ordinary :class:`plait.tools.Tool` objects, so memory
imports ``plait.tools`` (never the reverse): tools and memory sit on the same
layer, and keeping the dependency one way inside it avoids an import cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from pydantic import Field

from plait.chat import ToolSpec
from plait.errors import ToolError
from plait.provenance import Source, Sourced, memory_source
from plait.tools import Toolset, tool

from ._memory import RecallResult
from ._records import MemoryRecord

__all__ = ["MemoryTools", "memory_tools", "recall_block", "recall_sources"]


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

    async def search(self, query: str) -> Sourced:
        """``memory_search`` with the recalled records as the result's sources.

        Each record is a ``memory:<namespace>`` source with the record's trust,
        so a low-trust (tool- or web-written) record makes the result untrusted.
        """
        text = await self.call("memory_search", {"query": query})
        assert self.last_recall is not None
        namespace = str(getattr(self.memory, "namespace", "default"))
        return Sourced(text, recall_sources(self.last_recall, namespace))

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


def recall_sources(result: RecallResult, namespace: str) -> frozenset[Source]:
    """The sources of what a recall returned: one per record's namespace and trust."""
    return frozenset(
        memory_source(namespace, m.record.provenance.trust.value) for m in result.memories
    )


async def recall_block(memory: _Recaller, task: str, *, k: int = 3) -> tuple[str, RecallResult]:
    """Recall for a task and render a system-prompt block (empty when nothing is found).

    Returns the block and the recall result, whose ``rejected`` list belongs in the
    agent's trace.
    """
    result = await memory.recall(task, k=k)
    if not result.memories:
        return "", result
    return "Relevant memories (may be incomplete or wrong):\n" + result.as_context(), result


def memory_tools(
    memory: _Recaller, *, agent: str = "agent", k: int = 3, writable: bool = True
) -> Toolset:
    """``memory_search`` (and ``memory_remember``) as plait tools, for any agent's toolset.

    Searches go through the memory's guard when it has one, so the model never
    reads a rejected memory; writes are attributed to ``agent`` with source
    ``agent`` (the write policy and trust rules apply as to any write).

    Args:
        memory: a :class:`Memory` or an agent's view of a team memory.
        agent: name written into provenance of records the agent stores.
        k: how many memories a search returns.
        writable: also offer ``memory_remember``.
    """
    helper = MemoryTools(memory, agent=agent, k=k)

    @tool(name="memory_search")
    async def search(query: Annotated[str, Field(min_length=1)]) -> Sourced:
        """Search long-term memory for facts, past episodes and lessons.

        Args:
            query: what to look for.
        """
        return await helper.search(query)

    @tool(name="memory_remember")
    async def remember(
        text: Annotated[str, Field(min_length=1)],
        importance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5,
    ) -> str:
        """Store a fact or insight in long-term memory for later runs.

        Args:
            text: the fact or insight, in one or two sentences.
            importance: 0 to 1, how much it should weigh in later searches.
        """
        return await helper.call("memory_remember", {"text": text, "importance": importance})

    return Toolset([search, remember] if writable else [search])
