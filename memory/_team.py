"""Shared team memory with per-agent read/write permissions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError, MemoryAccessDenied

from ._memory import Memory, RecallResult
from ._records import MemoryRecord

__all__ = ["AgentMemoryView", "TeamMemory"]


class TeamMemory:
    """One memory shared by a team; each agent gets a view limited by its permissions.

    Args:
        memory: the shared memory (its namespace is the team's).
        permissions: agent name -> ``"r"``, ``"w"`` or ``"rw"``; agents not listed
            get ``default``.
        default: permissions of unlisted agents (``""``: none).
    """

    def __init__(
        self, memory: Memory, permissions: Mapping[str, str], *, default: str = ""
    ) -> None:
        for who, perms in {**permissions, "(default)": default}.items():
            if set(perms) - {"r", "w"}:
                raise ConfigError(
                    f"team memory permissions for {who!r} must be made of 'r' and 'w', "
                    f"got {perms!r}"
                )
        self.memory = memory
        self.permissions = dict(permissions)
        self.default = default

    def can(self, agent: str, action: str) -> bool:
        """Whether ``agent`` may ``r``\\ ead or ``w``\\ rite."""
        return action in self.permissions.get(agent, self.default)

    def for_agent(self, agent: str) -> AgentMemoryView:
        """The view an agent uses; every write is attributed to it."""
        return AgentMemoryView(self, agent)


class AgentMemoryView:
    """An agent's window on a team memory."""

    def __init__(self, team: TeamMemory, agent: str) -> None:
        self.team = team
        self.agent = agent

    def _check(self, action: str) -> None:
        if not self.team.can(self.agent, action):
            verb = "read" if action == "r" else "write"
            raise MemoryAccessDenied(
                f"agent {self.agent!r} may not {verb} team memory "
                f"{self.team.memory.namespace!r} (its permissions: "
                f"{self.team.permissions.get(self.agent, self.team.default)!r})"
            )

    async def remember(self, text: str, **fields: Any) -> MemoryRecord:
        """Write as this agent (``writer`` is always the agent's name).

        Raises:
            MemoryAccessDenied: the agent has no write permission.
        """
        self._check("w")
        fields["writer"] = self.agent
        return await self.team.memory.remember(text, **fields)

    async def recall(self, query: str, **options: Any) -> RecallResult:
        """Recall from the shared memory.

        Raises:
            MemoryAccessDenied: the agent has no read permission.
        """
        self._check("r")
        return await self.team.memory.recall(query, **options)
