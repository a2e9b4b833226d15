"""Tools: ``@tool``, toolsets, the runtime that enforces limits, built-ins, retrieval.

Built-ins: :data:`calculator` (arithmetic without ``eval``), :func:`http_tools`
(GET/POST to allow-listed hosts only) and :func:`file_tools` (read/write inside
one workspace folder).
"""

from ._calculator import calculator, evaluate
from ._files import Workspace, file_tools
from ._http import http_tools
from ._registry import Toolset
from ._retrieval import EmbeddingScorer, LexicalScorer, Scorer, ToolRetriever, tool_document
from ._runtime import Permissions, ToolErrorKind, ToolLimits, ToolOutcome, ToolRunner
from ._tool import Tool, json_schema_of, render_result, tool

__all__ = [
    "EmbeddingScorer",
    "LexicalScorer",
    "Permissions",
    "Scorer",
    "Tool",
    "ToolErrorKind",
    "ToolLimits",
    "ToolOutcome",
    "ToolRetriever",
    "ToolRunner",
    "Toolset",
    "Workspace",
    "calculator",
    "evaluate",
    "file_tools",
    "http_tools",
    "json_schema_of",
    "render_result",
    "tool",
    "tool_document",
]
