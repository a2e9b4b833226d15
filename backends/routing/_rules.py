"""Rule routing: the first rule that matches a request picks its backend."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plait.chat import ChatRequest
from plait.errors import ConfigError

from .._base import Backend
from ._costs import CostLedger
from ._router import Route, Router

__all__ = ["Rule", "RuleRouter"]


@dataclass(frozen=True)
class Rule:
    """Send matching requests to ``backend``. Every condition given must hold.

    Attributes:
        backend: where matching requests go.
        agent: a glob on ``ChatRequest.agent`` (``"planner"``, ``"research-*"``).
        tags: tags the request must all carry.
        pattern: a regular expression searched in the last message's text.
        when: any predicate on the request (for example on
            :func:`~plait.backends.routing.request_features`).
        name: shown in decisions (default: the rule's position).
    """

    backend: Backend
    agent: str | None = None
    tags: tuple[str, ...] = ()
    pattern: str | None = None
    when: Callable[[ChatRequest], bool] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ConfigError(
                    f"rule {self.name or '?'}: pattern {self.pattern!r} is not a valid "
                    f"regular expression ({e})"
                ) from e
        if self.agent is None and not self.tags and self.pattern is None and self.when is None:
            raise ConfigError(
                f"rule {self.name or '?'} has no condition; use RuleRouter's default instead"
            )

    def explain(self, request: ChatRequest) -> str | None:
        """Why the rule matches ``request`` (``None``: it does not)."""
        why = []
        if self.agent is not None:
            if request.agent is None or not fnmatch.fnmatchcase(request.agent, self.agent):
                return None
            why.append(f"agent {request.agent!r} matches {self.agent!r}")
        if self.tags:
            if not set(self.tags) <= set(request.tags):
                return None
            why.append(f"tags include {sorted(self.tags)}")
        if self.pattern is not None:
            text = getattr(request.messages[-1], "content", None) or ""
            if re.search(self.pattern, text) is None:
                return None
            why.append(f"last message matches /{self.pattern}/")
        if self.when is not None:
            if not self.when(request):
                return None
            why.append("predicate holds")
        return ", ".join(why)


class RuleRouter(Router):
    """Routes by the first matching :class:`Rule`, else to ``default``.

    Args:
        rules: tried in order.
        default: where requests no rule matches go.
        name: router name.
        ledger: cost accounting and caps.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        default: Backend,
        *,
        name: str = "rules",
        ledger: CostLedger | None = None,
    ) -> None:
        super().__init__(name=name, ledger=ledger)
        self.rules = tuple(rules)
        self.default = default

    def backends(self) -> Sequence[Backend]:
        return _unique([*(r.backend for r in self.rules), self.default])

    async def choose(self, request: ChatRequest) -> Route:
        for index, rule in enumerate(self.rules):
            why = rule.explain(request)
            if why is not None:
                label = rule.name or f"#{index}"
                return Route(rule.backend, f"rule {label}: {why}")
        return Route(self.default, "no rule matched: default backend")


def _unique(backends: Sequence[Backend]) -> list[Backend]:
    seen: list[Backend] = []
    for backend in backends:
        if not any(backend is s for s in seen):
            seen.append(backend)
    return seen
