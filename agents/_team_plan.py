"""The supervisor's structured outputs: a team plan (subtasks with roles) and reviews."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DraftPlan", "Review", "RoleSpec", "Subtask", "TeamPlan"]


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


class DraftPlan(BaseModel):
    """What the planning model answers: a :class:`TeamPlan` before its consistency checks.

    A JSON Schema (and so a decoding grammar) cannot say "ids are unique" or "needs
    name earlier subtasks"; small models do break those rules, and re-asking them
    rarely helps. :meth:`repair` fixes such plans and says what it changed.
    """

    model_config = ConfigDict(frozen=True)

    subtasks: list[Subtask] = Field(min_length=1, max_length=12)

    def repair(self) -> tuple[TeamPlan, list[str]]:
        """A consistent plan (repeated ids renamed, unknown needs dropped) and the fixes."""
        fixes: list[str] = []
        seen: set[str] = set()
        fixed: list[Subtask] = []
        for sub in self.subtasks:
            new_id, n = sub.id, 1
            while new_id in seen:
                n += 1
                new_id = f"{sub.id}_{n}"
            if new_id != sub.id:
                fixes.append(f"renamed the repeated id {sub.id!r} to {new_id!r}")
            needs = tuple(x for x in sub.needs if x in seen)
            if needs != sub.needs:
                dropped = sorted(set(sub.needs) - set(needs))
                fixes.append(f"{new_id}: dropped needs {dropped} (not earlier subtasks)")
            seen.add(new_id)
            fixed.append(sub.model_copy(update={"id": new_id, "needs": needs}))
        return TeamPlan(subtasks=fixed), fixes


class Review(BaseModel):
    """A reviewer's verdict on one worker result.

    ``accept`` keeps it; ``retry`` runs the same worker again with the feedback;
    ``reassign`` hires the subtask out again on a stronger backend.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Literal["accept", "retry", "reassign"]
    feedback: str = Field(default="", max_length=400)
