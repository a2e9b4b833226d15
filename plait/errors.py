"""Every error plait raises, in one hierarchy.

```
PlaitError
├── ConfigError            bad YAML, settings or arguments (file:line:col when known)
│   └── WorkflowValidationError  a workflow file has problems (every one, with positions)
├── PlanError              plan cycle, unknown tool or agent, bad reference
├── BackendError           a model backend failed
│   ├── ModelLoadError         a model file is missing, unreadable or not a model
│   ├── ContextLengthExceeded  a request does not fit the model's context
│   ├── BackendHTTPError       an HTTP backend answered with an error status
│   ├── BackendTimeout         a backend did not answer in time
│   ├── BackendUnavailable     a backend could not be reached (or every fallback failed)
│   ├── BackendProtocolError   a server answered with something that breaks the protocol
│   └── ModelOutputError       the model produced output that cannot be used
├── ToolError              a tool failed or was called with bad arguments
│   ├── ToolArgumentError      arguments do not match the tool's schema
│   ├── ToolPermissionError    the agent may not use this tool (or that host/path)
│   └── ToolTimeout            a tool did not finish within its time limit
├── BudgetExceeded         a run or router budget would be exceeded
├── MemoryGuardRejected    MemoryGuard refused a memory read or write
├── MemoryStoreError       a memory store cannot be opened, read or written
└── MemoryAccessDenied     an agent lacks read/write permission on a shared memory
```

Messages are one paragraph that say what was wrong and where, so the CLI can
print them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendError",
    "BackendHTTPError",
    "BackendProtocolError",
    "BackendTimeout",
    "BackendUnavailable",
    "BudgetExceeded",
    "ConfigError",
    "ContextLengthExceeded",
    "MemoryAccessDenied",
    "MemoryGuardRejected",
    "MemoryStoreError",
    "ModelLoadError",
    "ModelOutputError",
    "PlaitError",
    "PlanError",
    "ToolArgumentError",
    "ToolError",
    "ToolPermissionError",
    "ToolTimeout",
    "WorkflowValidationError",
]


class PlaitError(Exception):
    """Base class of every error plait raises on purpose."""


class ConfigError(PlaitError):
    """Invalid configuration: settings, YAML files, CLI or constructor arguments.

    Attributes:
        location: ``file:line:column`` (or any "where") when known.
    """

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class WorkflowValidationError(ConfigError):
    """A workflow file is invalid; every problem found is listed, each with its position.

    Attributes:
        file: the workflow file.
        problems: one entry per problem; ``str(problem)`` reads
            ``file:line:column: key: message (hint)``.
    """

    def __init__(self, file: str, problems: Sequence[Any]) -> None:
        self.file = file
        self.problems = tuple(problems)
        count = len(self.problems)
        listed = "\n".join(f"  {p}" for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        ConfigError.__init__(self, f"{file} has {count} {noun}:\n{listed}")


class PlanError(PlaitError):
    """A plan is invalid: a cycle, an unknown tool or agent, a bad reference.

    Attributes:
        task_id: the task the problem was found in, when there is one.
    """

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id}: {message}" if task_id else message)


class BackendError(PlaitError):
    """A model backend could not serve a request."""


class ModelLoadError(BackendError):
    """A model could not be loaded.

    Attributes:
        path: the model file that was tried.
        reason: why it failed, in words.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load model {path!r}: {reason}")


class ContextLengthExceeded(BackendError):
    """A request needs more tokens than the model's context holds.

    Attributes:
        needed: tokens the request needs (prompt plus at least one generated token).
        available: tokens the context holds.
    """

    def __init__(self, needed: int, available: int, *, model: str = "") -> None:
        self.needed = needed
        self.available = available
        where = f" of model {model!r}" if model else ""
        super().__init__(
            f"request needs {needed} tokens but the context{where} holds {available}; "
            "shorten the prompt or raise the context size (n_ctx)"
        )


class BackendHTTPError(BackendError):
    """An HTTP backend answered with an error status.

    Attributes:
        status_code: the HTTP status.
        server_message: the error text the server sent back.
    """

    def __init__(self, status_code: int, server_message: str, *, url: str = "") -> None:
        self.status_code = status_code
        self.server_message = server_message
        where = f" from {url}" if url else ""
        super().__init__(f"HTTP {status_code}{where}: {server_message}")


class BackendTimeout(BackendError):
    """A backend did not answer within its time limit."""


class BackendUnavailable(BackendError):
    """A backend could not be reached (connection refused, DNS, TLS), or a
    fallback chain ran out of backends to try."""


class BackendProtocolError(BackendError):
    """A server answered with a body plait cannot read: malformed JSON or SSE,
    or a response missing the fields the protocol requires."""


class ModelOutputError(BackendError):
    """The model produced output plait cannot use (for example invalid JSON).

    Attributes:
        raw: the model's raw text, kept for debugging and re-asking.
    """

    def __init__(self, message: str, *, raw: str) -> None:
        self.raw = raw
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        super().__init__(f"{message}; model output was: {shown!r}")


class ToolError(PlaitError):
    """A tool failed, timed out, or was called with arguments it cannot take."""


class ToolArgumentError(ToolError):
    """Arguments given to a tool do not match its schema.

    Attributes:
        tool: the tool's name.
        problems: one line per problem (``field: message``).
    """

    def __init__(self, tool: str, problems: str) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(f"invalid arguments for tool {tool!r}: {problems}")


class ToolPermissionError(ToolError):
    """A tool, host or path is not allowed for the one asking."""


class ToolTimeout(ToolError):
    """A tool did not finish within its time limit.

    Attributes:
        tool: the tool's name.
        timeout_s: the limit, in seconds.
    """

    def __init__(self, tool: str, timeout_s: float) -> None:
        self.tool = tool
        self.timeout_s = timeout_s
        super().__init__(f"tool {tool!r} did not finish within {timeout_s:g} s and was abandoned")


class BudgetExceeded(PlaitError):
    """Going on would exceed a configured budget (tokens, cost or calls)."""


class MemoryGuardRejected(PlaitError):
    """MemoryGuard refused to store or return a memory record."""


class MemoryStoreError(PlaitError):
    """A memory store could not be opened, read or written (bad path, corrupt files, server down).

    Attributes:
        location: the store directory or server address.
    """

    def __init__(self, message: str, *, location: str) -> None:
        self.location = location
        super().__init__(f"memory store {location}: {message}")


class MemoryAccessDenied(PlaitError):
    """An agent tried to read or write a shared memory it has no permission for."""
