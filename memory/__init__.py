"""Memory for agents: chromadb stores, an offline embedder, and MemoryGuard.

```python
from plait.memory import Memory, MemoryGuard

memory = Memory("my-workflow", guard=MemoryGuard(judge=backend))
await memory.remember("Staging deploys need the VPN", source="user", writer="ana")
result = await memory.recall("how do I reach staging?", k=3)
result.memories, result.rejected
```

Agents take a memory directly (``Agent(..., memory=memory)``: guarded recall into
the context, traced) and can search it as a tool (``tools=memory_tools(memory)``).
"""

from ._embedders import (
    BackendEmbedder,
    E5Embedder,
    Embedder,
    SentenceTransformerEmbedder,
    default_embedder,
)
from ._guard import MemoryGuard, Rejection, WritePolicy
from ._memory import Memory, RecallResult
from ._records import MemoryKind, MemoryRecord, Provenance, RecalledMemory, SourceKind, Trust
from ._scoring import ScoreWeights
from ._store import ChromaStore
from ._team import AgentMemoryView, TeamMemory
from ._tools import MemoryTools, memory_tools, recall_block

__all__ = [
    "AgentMemoryView",
    "BackendEmbedder",
    "ChromaStore",
    "E5Embedder",
    "Embedder",
    "Memory",
    "MemoryGuard",
    "MemoryKind",
    "MemoryRecord",
    "MemoryTools",
    "Provenance",
    "RecallResult",
    "RecalledMemory",
    "Rejection",
    "ScoreWeights",
    "SentenceTransformerEmbedder",
    "SourceKind",
    "TeamMemory",
    "Trust",
    "WritePolicy",
    "default_embedder",
    "memory_tools",
    "recall_block",
]
