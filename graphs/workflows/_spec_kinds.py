"""The ``workflow:`` section: one model per workflow kind (steps, planner, supervisor).

Adding a kind: a model with ``kind: Literal[...]`` added to :data:`WorkflowBody`,
its reference checks in ``_references`` and its runner in ``_kinds.RUNNERS``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ._spec_base import NAME_PATTERN, SpecModel
from ._spec_tools import ToolSelectionSpec

__all__ = [
    "ExecutorChoice",
    "PlannerWorkflow",
    "RayExecutorSpec",
    "StepSpec",
    "StepsWorkflow",
    "SupervisorWorkflow",
    "TeamRoleSpec",
    "TeamSubtaskSpec",
    "WorkerLimitsSpec",
    "WorkflowBody",
]


class StepSpec(SpecModel):
    """One step: run an agent on ``input``, or call a tool with ``args``.

    Values may refer to inputs (``${inputs.question}``) and to the results of
    earlier steps (``${research}``); referenced steps become dependencies.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    agent: str | None = None
    tool: str | None = None
    input: str | None = Field(default=None, description="the agent's task")
    args: dict[str, Any] = Field(default_factory=dict, description="the tool's arguments")
    depends_on: list[str] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    continue_on_error: bool = False
    requires_approval: bool = Field(
        default=False,
        description="a reviewer approves, rejects or edits the step before it runs (plait serve)",
    )


class RayExecutorSpec(SpecModel):
    """Run tasks on a Ray cluster where they can travel; the rest stay on the driver.

    Tool calls and agents whose backends talk to a server (OpenAI-compatible
    ones, ``RayModelPool``) run in Ray workers, which must be able to import
    the tools. An agent on an in-process model (a local backend, a router),
    with memory, or with memory or MCP tools, and those tools themselves, run
    in the driver process; ``plait validate`` lists them with the reason.
    """

    kind: Literal["ray"]
    address: str | None = Field(
        default=None,
        description="'auto' (the cluster of `ray start`), 'ray://host:10001', or omitted "
        "for a local cluster",
    )
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs one task reserves")


ExecutorChoice = Literal["local", "ray"] | RayExecutorSpec
"""``executor:`` of steps and planner workflows: ``local`` (default), ``ray``, or
``{kind: ray, address: ..., num_cpus: ...}``."""


class StepsWorkflow(SpecModel):
    """A static DAG of steps, run by the eager executor (parallel where possible)."""

    kind: Literal["steps"]
    steps: list[StepSpec] = Field(min_length=1)
    output: str | None = Field(
        default=None, description="the answer, e.g. '${summary}' (default: the last step)"
    )
    max_concurrency: int = Field(default=8, ge=1)
    executor: ExecutorChoice = "local"


class PlannerWorkflow(SpecModel):
    """LLMCompiler: a planner writes a DAG of calls to the tools and agents listed."""

    kind: Literal["planner"]
    question: str = Field(description="usually '${inputs.question}'")
    backend: str | None = Field(default=None, description="planner backend (omitted: default)")
    joiner: str | None = None
    tools: list[str] = Field(default_factory=list, description="tools entries offered to plans")
    agents: list[str] = Field(default_factory=list, description="agents offered to plans")
    plan_format: Literal["json", "text"] = "json"
    max_replans: int = Field(default=1, ge=0)
    max_tasks: int = Field(default=8, ge=1)
    executor: ExecutorChoice = "local"
    mode: Literal["default", "plan_then_execute"] = Field(
        default="default",
        description="plan_then_execute: untrusted results never reach the joiner or a replan",
    )
    tool_selection: ToolSelectionSpec | None = Field(
        default=None, description="model | embedding | hybrid (omitted: by backend)"
    )
    tool_sampling: int | None = Field(
        default=None,
        ge=1,
        description="JSON plans drawn per round, voted on (omitted: by backend; 1: no vote)",
    )
    requires_approval: list[str] = Field(
        default_factory=list,
        description="tools (or tools entries) whose planned calls wait for a reviewer's "
        "approve, reject or edit (plait serve); without a reviewer they are rejected",
    )


class WorkerLimitsSpec(SpecModel):
    """Limits of each worker a supervisor hires."""

    max_steps: int = Field(default=4, ge=1)
    max_turn_tokens: int = Field(default=512, ge=1)
    timeout_s: float | None = Field(default=120.0, gt=0)


class TeamRoleSpec(SpecModel):
    """A worker role of a fixed team plan."""

    name: str = Field(pattern=NAME_PATTERN)
    instructions: str = Field(min_length=1, max_length=600)


class TeamSubtaskSpec(SpecModel):
    """One subtask of a fixed team plan (``needs``: earlier subtask ids whose results it reads)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    task: str = Field(min_length=1, description="may use ${inputs.NAME}")
    role: TeamRoleSpec | None = None
    agent: str | None = Field(default=None, description="an agents entry to delegate to")
    hard: bool = Field(default=False, description="start on the second worker tier")
    needs: list[str] = Field(default_factory=list)


class SupervisorWorkflow(SpecModel):
    """A supervisor team (:class:`plait.agents.Supervisor` on the DAG executor).

    The lead plans (unless ``plan`` fixes the subtasks), hires each worker on the
    cheapest ``workers`` tier that fits ``budget``, reviews and aggregates. The
    ``brief`` comes first in every prompt of the team: one pinned KV prefix.
    """

    kind: Literal["supervisor"]
    goal: str = Field(description="usually '${inputs.task}'")
    name: str = Field(default="lead", pattern=NAME_PATTERN, description="the supervisor's name")
    backend: str | None = Field(default=None, description="the lead's backend (omitted: default)")
    workers: list[str] = Field(
        default_factory=list, description="worker backend tiers, cheapest first (omitted: backend)"
    )
    brief: str = Field(default="", description="the team brief, first in every team prompt")
    agents: list[str] = Field(default_factory=list, description="agents the plan may delegate to")
    reviewer: str | None = Field(
        default=None, description="a backend that reviews each result (omitted: accept all)"
    )
    plan: list[TeamSubtaskSpec] | None = Field(
        default=None, min_length=1, max_length=12, description="fixed subtasks (no planning call)"
    )
    budget: float | None = Field(default=None, ge=0, description="cap on the team's cost")
    max_depth: int = Field(default=2, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    aggregate: bool = Field(default=True, description="combine with a model call; false: join")
    temperature: float | None = Field(default=None, ge=0)
    worker_limits: WorkerLimitsSpec = Field(default_factory=WorkerLimitsSpec)
    max_concurrency: int = Field(default=8, ge=1)
    mode: Literal["default", "plan_then_execute"] = Field(
        default="default",
        description="plan_then_execute: results resting on untrusted data never reach the "
        "reviewer or the aggregator's wording",
    )


WorkflowBody = Annotated[
    StepsWorkflow | PlannerWorkflow | SupervisorWorkflow, Field(discriminator="kind")
]
