"""Policies: which sources may reach a tool (or one of its arguments), checked in code.

A :class:`Policy` names a tool (shell-style pattern), optionally one argument,
and either the sources that must not reach it (``deny_from``) or the only ones
that may (``allow_only``). The executor checks every task, and the tool runner
every tool call an agent makes, *before* the call runs; nothing here asks a
model. A call that breaks a policy never runs: the :class:`Violation` is
recorded with the offending sources and the path the value took, and the call
fails, waits for a reviewer's approval, or is dropped, as the policy says.

``default_policies()`` is the set for plait's side-effecting built-ins: file
writes, HTTP POST and ``memory_remember`` refuse untrusted data.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from plait.provenance import Source, matches

__all__ = [
    "DEFAULT_GUARDED_TOOLS",
    "Policy",
    "PolicyAction",
    "PolicySet",
    "Violation",
    "active_policies",
    "default_policies",
    "enforcing",
    "record_violation",
    "strictest",
]

PolicyAction = Literal["fail", "require_approval", "drop"]
"""What happens to a call that breaks a policy: it fails (its dependants are
skipped), it waits for a reviewer (the approval path), or it is dropped
(skipped quietly: a plan goes on without it)."""

DEFAULT_GUARDED_TOOLS = ("write_file", "http_post", "memory_remember")
"""The side-effecting built-ins :func:`default_policies` guards."""

_PATTERN = re.compile(r"^(untrusted|trusted|[A-Za-z_*?][\w*?.-]*(:[^\s:]+)?)$")
_SEVERITY: dict[PolicyAction, int] = {"fail": 3, "require_approval": 2, "drop": 1}


class Policy(BaseModel):
    """A rule on which sources may reach a tool call.

    Attributes:
        tool: the tool (or agent) name, shell-style wildcards allowed.
        argument: one argument the rule is about (``None``: every argument).
        deny_from: source patterns that must not reach it (``web``,
            ``tool:http_get``, ``memory:low``, ``untrusted``; see
            :func:`plait.provenance.matches`).
        allow_only: the only source patterns that may reach it (``[user]``).
        on_violation: ``fail``, ``require_approval`` or ``drop``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    argument: str | None = None
    deny_from: tuple[str, ...] = ()
    allow_only: tuple[str, ...] | None = None
    on_violation: PolicyAction = "fail"

    @field_validator("deny_from", "allow_only")
    @classmethod
    def _patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            if not _PATTERN.match(pattern):
                raise ValueError(
                    f"{pattern!r} is not a source pattern (use untrusted, trusted, a kind such "
                    "as web or user, kind:name such as tool:http_get, or kind:level such as "
                    "memory:low)"
                )
        return value

    @model_validator(mode="after")
    def _has_rule(self) -> Policy:
        if not self.deny_from and self.allow_only is None:
            raise ValueError("a policy needs deny_from or allow_only")
        return self

    def applies_to(self, tool: str) -> bool:
        """Whether this policy is about ``tool``."""
        return fnmatchcase(tool, self.tool)

    def offending(self, sources: Iterable[Source]) -> list[Source]:
        """The sources this policy refuses, sorted by their text."""
        bad = []
        for source in sources:
            denied = any(matches(p, source) for p in self.deny_from)
            outside = self.allow_only is not None and not any(
                matches(p, source) for p in self.allow_only
            )
            if denied or outside:
                bad.append(source)
        return sorted(bad, key=str)

    @property
    def rule(self) -> str:
        """The policy in one line (for messages and records)."""
        target = self.tool if self.argument is None else f"{self.tool}.{self.argument}"
        parts = []
        if self.deny_from:
            parts.append(f"deny_from [{', '.join(self.deny_from)}]")
        if self.allow_only is not None:
            parts.append(f"allow_only [{', '.join(self.allow_only)}]")
        return f"{target}: {'; '.join(parts)} -> {self.on_violation}"


class Violation(BaseModel):
    """A call that was not run because it broke a policy.

    Attributes:
        tool: the tool (or agent) that would have been called.
        argument: the argument that carried the data (``None``: the whole call).
        rule: the policy, in one line.
        offending: the refused sources, as text (``web``, ``memory:notes@low``).
        action: what was done (``fail``, ``require_approval``, ``drop``).
        task_id: the executor task, when the executor refused it.
        agent: the agent whose tool call it was, when an agent made it.
        path: how the value got here, origin first (task ids, or the agent's
            tool calls), ending at the refused call.
    """

    model_config = ConfigDict(frozen=True)

    tool: str
    argument: str | None = None
    rule: str
    offending: tuple[str, ...]
    action: PolicyAction
    task_id: str | None = None
    agent: str | None = None
    path: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One paragraph saying what was refused and why."""
        where = f"task {self.task_id} " if self.task_id is not None else ""
        who = f"agent {self.agent!r} " if self.agent is not None else ""
        target = repr(self.tool)
        if self.argument:
            target = f"argument {self.argument!r} of {target}"
        via = f" (path: {' -> '.join(self.path)})" if self.path else ""
        verb = {
            "fail": "refused",
            "require_approval": "held for approval",
            "drop": "dropped",
        }[self.action]
        return (
            f"policy violation: {where}{who}call to {self.tool!r} {verb}: {target} would "
            f"receive data from {', '.join(self.offending)}{via}; policy {self.rule}"
        )


class PolicySet:
    """Policies checked together; the strictest action of the broken ones applies.

    Args:
        policies: the rules (``Policy`` objects or their dict forms).
    """

    def __init__(self, policies: Iterable[Policy | Mapping[str, object]] = ()) -> None:
        self.policies: tuple[Policy, ...] = tuple(
            p if isinstance(p, Policy) else Policy.model_validate(p) for p in policies
        )

    def __bool__(self) -> bool:
        return bool(self.policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

    def __add__(self, other: PolicySet | Iterable[Policy]) -> PolicySet:
        # A rule given twice (an agent's own and its task's) is checked once.
        return PolicySet(dict.fromkeys((*self.policies, *other)))

    def __repr__(self) -> str:
        return f"PolicySet({list(self.policies)!r})"

    def guards(self, tool: str) -> bool:
        """Whether any policy is about ``tool``."""
        return any(p.applies_to(tool) for p in self.policies)

    def check(
        self,
        tool: str,
        arguments: Mapping[str, Iterable[Source]],
        *,
        whole: Iterable[Source] = (),
    ) -> list[Violation]:
        """Every policy ``tool`` would break with these sources.

        Args:
            tool: the tool about to be called.
            arguments: each argument's sources.
            whole: sources of the call as a whole (for policies without an
                argument, added to every argument's).
        """
        per_argument = {k: frozenset(v) for k, v in arguments.items()}
        everything = frozenset(whole).union(*per_argument.values())
        found = []
        for policy in self.policies:
            if not policy.applies_to(tool):
                continue
            if policy.argument is None:
                bad = policy.offending(everything)
            elif policy.argument in per_argument:
                bad = policy.offending(per_argument[policy.argument] | frozenset(whole))
            else:
                continue  # the argument is not passed: nothing reaches it
            if bad:
                found.append(
                    Violation(
                        tool=tool,
                        argument=policy.argument,
                        rule=policy.rule,
                        offending=tuple(str(s) for s in bad),
                        action=policy.on_violation,
                    )
                )
        return found


def strictest(violations: Iterable[Violation]) -> PolicyAction | None:
    """The action to take for several broken policies (``fail`` beats approval beats ``drop``)."""
    actions: list[PolicyAction] = [v.action for v in violations]
    if not actions:
        return None
    return max(actions, key=lambda a: _SEVERITY[a])


def default_policies() -> PolicySet:
    """Untrusted data never reaches plait's side-effecting built-ins.

    ``write_file``, ``http_post`` and ``memory_remember`` refuse any argument
    that derives from a low-trust source (tool results, web pages, MCP servers,
    low-trust memories); the call fails with the reason.
    """
    return PolicySet(Policy(tool=name, deny_from=("untrusted",)) for name in DEFAULT_GUARDED_TOOLS)


@dataclass(frozen=True)
class _Enforcement:
    """What the code running now answers to: every enclosing run's policies and sinks."""

    policies: PolicySet | None = None
    # Every run the code is nested in listens: a call refused inside a team inside a
    # plan is one of the plan's violations as well as the team's.
    sinks: tuple[list[Violation], ...] = ()


# Run state a lower layer needs: a tool runner deep inside an agent, inside a
# team, inside a plan task, sees the policies of every run around it.
_ENFORCED: contextvars.ContextVar[_Enforcement | None] = contextvars.ContextVar(
    "plait_policies", default=None
)
_OUTSIDE = _Enforcement()  # no run around this code


def active_policies() -> PolicySet | None:
    """The policies of the executor task this code runs in (``None`` outside one)."""
    return (_ENFORCED.get() or _OUTSIDE).policies


def record_violation(violation: Violation) -> None:
    """Report a refused call to the runs it happened in (every one that listens)."""
    seen: set[int] = set()
    for sink in (_ENFORCED.get() or _OUTSIDE).sinks:
        if id(sink) not in seen:  # a sink listed twice hears a refusal once
            seen.add(id(sink))
            sink.append(violation)


@contextmanager
def enforcing(policies: PolicySet | None, sink: list[Violation] | None = None) -> Iterator[None]:
    """Run code under ``policies``: agents started inside check their tool calls too.

    Policies add up: code nested in another enforcing block (a team's workers
    inside a plan's task, an executor inside an agent's tool) is held to the
    outer policies as well as ``policies``, so a nested run can never shed
    them. Violations recorded inside (by agents' tool runners) are appended
    to ``sink`` and to every outer sink.
    """
    outer = _ENFORCED.get() or _OUTSIDE
    combined = policies if outer.policies is None else outer.policies + (policies or ())
    sinks = outer.sinks if sink is None else (*outer.sinks, sink)
    token = _ENFORCED.set(_Enforcement(combined, sinks))
    try:
        yield
    finally:
        _ENFORCED.reset(token)
