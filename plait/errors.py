"""Every error plait raises, in one hierarchy.

```
PlaitError
├── ConfigError            usage: bad YAML, settings, constructor or CLI arguments
│   ├── WorkflowValidationError  a workflow file has problems (every one, with positions)
│   └── ModelLoadError         a model file is missing, unreadable or not a model
├── PlanError              usage: a plan given by the caller is invalid (cycle, unknown
│                          tool or agent, bad reference)
├── ScriptExhausted        a test double was asked more often than its script allows
└── RunError               a failure during a run; a run may catch these and go on
    ├── BackendError           a model backend could not serve a request
    │   ├── ContextLengthExceeded  a request does not fit the model's context
    │   ├── BackendHTTPError       an HTTP backend answered with an error status
    │   ├── BackendTimeout         a backend did not answer in time
    │   ├── BackendUnavailable     a backend could not be reached (or every fallback failed)
    │   └── BackendProtocolError   a server answered with something that breaks the protocol
    │       └── BackendStreamTruncated  a stream ended before its end marker (a cut-off answer)
    ├── ModelOutputError       the model's output cannot be used (the raw text is kept)
    ├── ToolError              a tool failed or was called with bad arguments
    │   ├── ToolArgumentError      arguments do not match the tool's schema
    │   ├── ToolPermissionError    the agent may not use this tool (or that host/path)
    │   └── ToolTimeout            a tool did not finish within its time limit
    ├── BudgetExceeded         a run or router budget would be exceeded
    ├── PolicyViolation        data from a source a policy forbids would reach a call
    ├── WorkerFailed           a team worker's subtask ended without an accepted result
    ├── RemoteAgentError       a remote (A2A) agent failed, refused or could not be reached
    │   ├── RemoteAgentProtocolError  its agent card or replies break the A2A protocol
    │   ├── RemoteAgentTimeout        it did not finish within its deadline
    │   └── RemoteAgentTooLarge       a response was over the size cap
    ├── MemoryGuardRejected    MemoryGuard refused a memory read or write
    ├── MemoryStoreError       a memory store cannot be opened, read or written
    └── MemoryAccessDenied     an agent lacks read/write permission on a shared memory
```

Usage errors sit outside ``RunError`` on purpose (as httpx keeps misuse outside
``HTTPError``): code that lets a run go on after a failure catches ``RunError``
only, so a misconfiguration surfaces at once instead of becoming "the step
failed". Control flow is not an error at all: :func:`is_control_flow` names the
exceptions (cancellation, LangGraph's interrupts and commands) that every broad
``except`` re-raises first.

Messages are one paragraph that say what was wrong and where, so the CLI can
print them as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendError",
    "BackendHTTPError",
    "BackendProtocolError",
    "BackendStreamTruncated",
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
    "PolicyViolation",
    "RemoteAgentError",
    "RemoteAgentProtocolError",
    "RemoteAgentTimeout",
    "RemoteAgentTooLarge",
    "RunError",
    "ScriptExhausted",
    "ToolArgumentError",
    "ToolError",
    "ToolPermissionError",
    "ToolTimeout",
    "WorkerFailed",
    "WorkflowValidationError",
    "is_control_flow",
    "is_usage_error",
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


class ScriptExhausted(PlaitError, AssertionError):
    """A scripted test backend was asked more often than its script allows.

    An ``AssertionError`` too, so a test runner reports it as a failed expectation.
    """


class RunError(PlaitError):
    """A failure during a run: a backend, the model's output, a tool, a budget, a worker
    or a memory. A run that should go on after a failure catches this group only."""


class BackendError(RunError):
    """A model backend could not serve a request."""


class ModelLoadError(ConfigError):
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


class BackendStreamTruncated(BackendProtocolError):
    """A streamed answer ended before the server's end marker (``data: [DONE]``).

    The connection closed cleanly, but the answer may be cut off anywhere: it is
    not a completion. Routers treat it like any protocol error (transient: the
    next backend of a fallback chain is tried when no output was shown yet).

    Attributes:
        partial: the text received before the stream ended.
        url: the endpoint that was streaming.
    """

    def __init__(self, url: str, partial: str) -> None:
        self.url = url
        self.partial = partial
        super().__init__(
            f"the stream from {url} ended without its end marker ([DONE]) after "
            f"{len(partial)} characters of text: the answer is truncated"
        )


class ModelOutputError(RunError):
    """The model produced output plait cannot use (for example invalid JSON).

    Attributes:
        raw: the model's raw text, kept for debugging and re-asking.
    """

    def __init__(self, message: str, *, raw: str) -> None:
        self.raw = raw
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        super().__init__(f"{message}; model output was: {shown!r}")


class ToolError(RunError):
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


class BudgetExceeded(RunError):
    """Going on would exceed a configured budget (tokens, cost or calls)."""


class PolicyViolation(RunError):
    """A call was not run: data from a source its policy forbids would have reached it.

    Attributes:
        violation: what was refused (a :class:`plait.policies.Violation`): the
            tool and argument, the offending sources and the path the value took.
    """

    def __init__(self, violation: Any) -> None:
        self.violation = violation
        super().__init__(violation.message)


class WorkerFailed(RunError):
    """A team worker's subtask ended without an accepted result (the reason is the message)."""


class RemoteAgentError(RunError):
    """A remote agent (over A2A) failed its task, refused it, or could not be reached.

    Attributes:
        url: the agent's URL (every message names it).
    """

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"remote agent {url}: {message}")


class RemoteAgentProtocolError(RemoteAgentError):
    """A remote agent's card or replies break the A2A protocol (malformed JSON, no
    JSON-RPC interface, a stream that ends before the task does)."""


class RemoteAgentTimeout(RemoteAgentError):
    """A remote agent did not finish within its deadline (its task is cancelled).

    Attributes:
        timeout_s: the deadline, in seconds.
    """

    def __init__(self, url: str, timeout_s: float, what: str = "answer") -> None:
        self.timeout_s = timeout_s
        super().__init__(url, f"did not {what} within {timeout_s:g} s")


class RemoteAgentTooLarge(RemoteAgentError):
    """A response from a remote agent was over the size cap (the rest was not read).

    Attributes:
        max_bytes: the cap, in bytes.
    """

    def __init__(self, url: str, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(
            url, f"a response was over the limit of {max_bytes} bytes; stopped reading"
        )


class MemoryGuardRejected(RunError):
    """MemoryGuard refused to store or return a memory record."""


class MemoryStoreError(RunError):
    """A memory store could not be opened, read or written (bad path, corrupt files, server down).

    Attributes:
        location: the store directory or server address.
    """

    def __init__(self, message: str, *, location: str) -> None:
        self.location = location
        super().__init__(f"memory store {location}: {message}")


class MemoryAccessDenied(RunError):
    """An agent tried to read or write a shared memory it has no permission for."""


def is_control_flow(error: BaseException) -> bool:
    """Whether ``error`` steers a run instead of reporting a failure.

    True for cancellation, ``KeyboardInterrupt``/``SystemExit``, and LangGraph's
    bubble-up exceptions (``GraphInterrupt``, ``ParentCommand``, ...), which a
    graph raises through user code on purpose. Every broad ``except`` re-raises
    these before treating anything as a failure. LangGraph is recognised by its
    base class's name, so the core (and the DAG executor) never import it.
    """
    if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    return any(
        cls.__name__ == "GraphBubbleUp" and cls.__module__.startswith("langgraph.")
        for cls in type(error).__mro__
    )


def is_usage_error(error: BaseException) -> bool:
    """Whether ``error`` is a usage error: a :class:`PlaitError` outside :class:`RunError`.

    A misconfigured agent, backend or tool, or an invalid plan: every call set
    up the same way fails the same way, so it is never one call's failure and
    is never worth another attempt.
    """
    return isinstance(error, PlaitError) and not isinstance(error, RunError)
