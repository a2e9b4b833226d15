"""Every error plait raises, in one hierarchy.

```
PlaitError
├── ConfigError            bad YAML, settings or arguments (file:line:col when known)
├── PlanError              plan cycle, unknown tool or agent, bad reference
├── BackendError           a model backend failed
│   ├── ModelLoadError         a model file is missing, unreadable or not a model
│   ├── ContextLengthExceeded  a request does not fit the model's context
│   ├── BackendHTTPError       an HTTP backend answered with an error status
│   ├── BackendTimeout         a backend did not answer in time
│   └── ModelOutputError       the model produced output that cannot be used
├── ToolError              a tool failed or was called with bad arguments
├── BudgetExceeded         a run or router budget would be exceeded
├── MemoryGuardRejected    MemoryGuard refused a memory read or write
├── MemoryStoreError       a memory store cannot be opened, read or written
└── MemoryAccessDenied     an agent lacks read/write permission on a shared memory
```

Messages are one paragraph that say what was wrong and where, so the CLI can
print them as they are.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendHTTPError",
    "BackendTimeout",
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
    "ToolError",
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
