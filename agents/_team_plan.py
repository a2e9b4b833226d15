"""The supervisor's structured outputs: a team plan (subtasks with roles) and reviews."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Review", "RoleSpec", "Subtask", "TeamPlan"]


class RoleSpec(BaseModel):
    """A role designed for one subtask (HALO's role-design step).

    Attributes:
        name: a short role name, e.g. ``researcher``.
        instructions: what a worker in this role does and how.
    """

    model_config = ConfigDict(frozen=True)

    # No max_length next to a pattern: grammar-constrained decoders cannot enforce
    # both, and a small model's long id is harmless.
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    instructions: str = Field(min_length=1, max_length=600)


class Subtask(BaseModel):
    """One piece of the goal.

    Attributes:
        id: unique in the plan (letters, digits, ``_``).
        task: what the worker must do, self-contained.
        role: a designed role; ignored when ``agent`` names a registered agent.
        agent: a registered agent (or nested supervisor) to delegate to instead.
        hard: needs a stronger backend from the start (hiring skips the cheapest tiers).
        needs: subtask ids whose accepted results this one reads.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    task: str = Field(min_length=1, max_length=800)
    role: RoleSpec | None = None
    agent: str | None = None
    hard: bool = False
    needs: tuple[str, ...] = ()


class TeamPlan(BaseModel):
    """Subtasks that together reach the goal; independent ones run in parallel."""

    model_config = ConfigDict(frozen=True)

    subtasks: list[Subtask] = Field(min_length=1, max_length=12)

    @model_validator(mode="after")
    def _consistent(self) -> TeamPlan:
        seen: set[str] = set()
        for sub in self.subtasks:
            if sub.id in seen:
                raise ValueError(f"subtask id {sub.id!r} is used twice")
            unknown = [n for n in sub.needs if n not in seen]
            if unknown:
                raise ValueError(
                    f"subtask {sub.id!r} needs {unknown}, which are not earlier subtasks"
                )
            seen.add(sub.id)
        return self


class Review(BaseModel):
    """A reviewer's verdict on one worker result.

    ``accept`` keeps it; ``retry`` runs the same worker again with the feedback;
    ``reassign`` hires the subtask out again on a stronger backend.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Literal["accept", "retry", "reassign"]
    feedback: str = Field(default="", max_length=400)
