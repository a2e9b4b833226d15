"""One compute lane per process: the thread that runs every local engine's batches.

Each engine (one per loaded model and options) used to own a thread; two models
in one process then fought for the same cores, and llama.cpp's worker threads of
one slowed the other's decode to about half. The lane runs the engines' turns
(commands, admission, one decode batch) one after another on a single thread, so
at any moment one llama.cpp context computes, on all the threads it was given.
With one engine the lane is that engine's loop, as before.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["ComputeLane", "Tenant", "shared_lane"]


class Tenant(Protocol):
    """What the lane needs of an engine (called on the lane thread, ``ready`` under its lock)."""

    def ready(self) -> bool:
        """Whether the engine has anything to do (queued work, running jobs, closing)."""
        ...

    def turn(self) -> bool:
        """Run one turn (commands, admission, one batch); ``False``: the engine stopped.

        It never raises: an engine that fails shuts itself down within the turn.
        """
        ...


class ComputeLane:
    """A thread that runs the turns of several engines in round-robin order.

    Engines take the lane's ``cond`` as their own lock, so a submit to any of
    them wakes the lane. The thread starts with the first engine and lives as
    long as the process (a daemon; it sleeps when nothing is ready).
    """

    def __init__(self, name: str = "plait-engine") -> None:
        self.cond = threading.Condition()
        self._name = name
        self._tenants: list[Tenant] = []
        self._thread: threading.Thread | None = None

    def join(self, tenant: Tenant) -> None:
        """Add an engine to the lane (call with ``cond`` held); idempotent."""
        if tenant not in self._tenants:
            self._tenants.append(tenant)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self.cond.notify()

    @property
    def tenants(self) -> int:
        """How many engines share the lane now."""
        with self.cond:
            return len(self._tenants)

    def _run(self) -> None:
        while True:
            with self.cond:
                ready = [t for t in self._tenants if t.ready()]
                while not ready:
                    self.cond.wait()
                    ready = [t for t in self._tenants if t.ready()]
            for tenant in ready:
                if not tenant.turn():
                    with self.cond:
                        self._tenants.remove(tenant)


_shared: ComputeLane | None = None
_shared_lock = threading.Lock()


def shared_lane() -> ComputeLane:
    """The process's compute lane, which every local engine joins by default."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ComputeLane()
        return _shared
