"""plait: multi-agent LLM orchestration on a DAG planner/executor.

The root namespace holds the core types every layer shares; features live in
the subpackages ``plait.backends``, ``plait.tools``, ``plait.memory``,
``plait.agents`` and ``plait.graphs``.
"""

from plait._version import __version__
from plait.chat import ChatRequest, ToolSpec
from plait.completions import Completion, StreamChunk, Timings, Usage
from plait.errors import PlaitError
from plait.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from plait.settings import Settings

__all__ = [
    "AssistantMessage",
    "ChatRequest",
    "Completion",
    "Message",
    "PlaitError",
    "Settings",
    "StreamChunk",
    "SystemMessage",
    "Timings",
    "ToolCall",
    "ToolMessage",
    "ToolSpec",
    "Usage",
    "UserMessage",
    "__version__",
]
