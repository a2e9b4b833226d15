"""The interactive REPL (``plait repl [FILE]``): talk to agents, plan, inspect runs.

```python
from plait.cli.repl import default_session, run_repl

run_repl(default_session())  # the embedded model, an assistant with a calculator
```

Build a :class:`Session` by hand to drive your own agents from a terminal.
"""

from ._app import arun_repl, run_repl
from ._commands import COMMANDS, Command, Shell
from ._completion import ReplCompleter, candidates
from ._session import PendingPlan, Session, default_session, load_session, workflow_session

__all__ = [
    "COMMANDS",
    "Command",
    "PendingPlan",
    "ReplCompleter",
    "Session",
    "Shell",
    "arun_repl",
    "candidates",
    "default_session",
    "load_session",
    "run_repl",
    "workflow_session",
]
