"""Tools: @tool, registry, built-ins, limits and retrieval (coming with their issues)."""

__all__: list[str] = []
