"""What a test job on the local engine produced: its tokens and its outcome."""

from __future__ import annotations

import threading

from plait.backends.local._engine import JobEnd

WAIT_S = 30  # only guards against a hang; nothing in the engine tests is timed


class JobRecord:
    """Collects a job's tokens (``_token``) and outcome (``_done``); ``wait`` for the end."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.outcome: JobEnd | None = None
        self.done = threading.Event()

    def _token(self, token: int) -> bool:
        self.tokens.append(token)
        return True

    def _done(self, outcome: JobEnd) -> None:
        self.outcome = outcome
        self.done.set()

    def wait(self) -> JobEnd:
        assert self.done.wait(WAIT_S), "the job never finished"
        assert self.outcome is not None
        return self.outcome
