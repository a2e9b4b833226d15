"""Tools: ``@tool``, toolsets, the runtime that enforces limits, built-ins, retrieval.

Built-ins: :data:`calculator` (arithmetic without ``eval``), :func:`http_tools`
(GET/POST to allow-listed hosts only) and :func:`file_tools` (read/write inside
one workspace folder). Adapters: :func:`from_langchain` (a LangChain tool as a
plait tool) and :func:`as_langchain_tool` (a plait tool for LangGraph's
``ToolNode``, still under plait's limits). MCP: :func:`mcp_tools` and
:class:`MCPClient` (an MCP server's tools, over stdio or streamable HTTP).
Memory search/remember tools come from :func:`plait.memory.memory_tools`
(memory sits beside tools, not under them).
"""

from ._calculator import calculator, evaluate
from ._files import Workspace, file_tools
from ._http import http_tools
from ._langchain import as_langchain_tool, as_langchain_tools, from_langchain
from ._mcp import MCPClient, mcp_tools
from ._registry import Toolset
from ._retrieval import EmbeddingScorer, LexicalScorer, Scorer, ToolRetriever, tool_document
from ._runtime import Permissions, ToolErrorKind, ToolLimits, ToolOutcome, ToolRunner
from ._schema_tool import schema_tool
from ._selection import (
    ExampleMatch,
    SelectionDecision,
    SelectionPolicy,
    SelectionRole,
    TextEmbedder,
    ToolScore,
    ToolSelection,
    ToolSelector,
    default_selection,
    name_words,
    selection_document,
)
from ._tool import Tool, ToolExample, ToolExampleLike, json_schema_of, render_result, tool

__all__ = [
    "EmbeddingScorer",
    "ExampleMatch",
    "LexicalScorer",
    "MCPClient",
    "Permissions",
    "Scorer",
    "SelectionDecision",
    "SelectionPolicy",
    "SelectionRole",
    "TextEmbedder",
    "Tool",
    "ToolErrorKind",
    "ToolExample",
    "ToolExampleLike",
    "ToolLimits",
    "ToolOutcome",
    "ToolRetriever",
    "ToolRunner",
    "ToolScore",
    "ToolSelection",
    "ToolSelector",
    "Toolset",
    "Workspace",
    "as_langchain_tool",
    "as_langchain_tools",
    "calculator",
    "default_selection",
    "evaluate",
    "file_tools",
    "from_langchain",
    "http_tools",
    "json_schema_of",
    "mcp_tools",
    "name_words",
    "render_result",
    "schema_tool",
    "selection_document",
    "tool",
    "tool_document",
]
