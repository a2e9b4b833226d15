"""chromadb-backed memories, offline embedder and MemoryGuard (coming with their issues)."""

__all__: list[str] = []
