"""The interactive REPL (``plait repl [FILE]``): talk to agents, plan, inspect runs.

```python
from plait.cli.repl import default_session, run_repl

run_repl(default_session())  # the embedded model, an assistant with a calculator
```

Build a :class:`ReplSession` by hand to drive your own agents from a terminal.
"""

import warnings
from typing import Any

from ._app import arun_repl, run_repl
from ._commands import COMMANDS, Command, Shell
from ._completion import ReplCompleter, candidates
from ._session import PendingPlan, ReplSession, default_session, load_session, workflow_session

__all__ = [
    "COMMANDS",
    "Command",
    "PendingPlan",
    "ReplCompleter",
    "ReplSession",
    "Shell",
    "arun_repl",
    "candidates",
    "default_session",
    "load_session",
    "run_repl",
    "workflow_session",
]


def __getattr__(name: str) -> Any:
    # ``Session`` named two things (this and the MCP client's connection): renamed.
    if name == "Session":
        warnings.warn(
            "plait.cli.repl.Session is deprecated; use plait.cli.repl.ReplSession",
            DeprecationWarning,
            stacklevel=2,
        )
        return ReplSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
