"""Plan-then-execute for one agent run: untrusted tool results reach calls only by reference.

In an agent's default mode the model reads every tool result, so once it has
read one untrusted result everything it does afterwards may have been steered
by it: every argument of every later call carries every source the run has
read, and a policy that keeps untrusted data out of a recipient refuses the
whole rest of the run. In plan-then-execute mode (CaMeL, Debenedetti et al.
2025; the plan-then-execute pattern of Beurer-Kellner et al. 2025) the model
never reads an untrusted result: it sees a numbered placeholder instead and may
pass ``"$n"`` as an argument or write ``$n`` in its answer. The run fills the
reference in after the model's decision, in code, so the model's control flow
(which tool, which recipient) rests only on trusted inputs, and the sources of
a result reach exactly the arguments that reference it. Policies on arguments
(``send_email.to`` must not come from untrusted data) then judge each argument
by where it really came from.

A result counts as untrusted when any of its sources is low-trust; a result of
a call whose arguments referenced one is untrusted too (a pure tool's result
derives from its arguments), so a quarantined extraction's output stays
withheld: it removes control, not taint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.provenance import Source, describe, untrusted

from ._prompts import render

__all__ = ["Quarantine", "Resolved"]

# "$3" inside an argument or an answer; "$30" is result 30, never result 3 and a "0".
_REFERENCE = re.compile(r"\$([0-9]+)(?![0-9])")


@dataclass(frozen=True)
class Resolved:
    """A call's arguments with the references to withheld results filled in.

    Attributes:
        arguments: the arguments the tool receives.
        sources: for each argument, the sources of the results it references.
        references: for each argument, the result numbers it references.
    """

    arguments: dict[str, Any]
    sources: dict[str, frozenset[Source]]
    references: dict[str, tuple[int, ...]]


@dataclass
class _Withheld:
    tool: str
    text: str
    sources: frozenset[Source]


@dataclass
class Quarantine:
    """The tool results of one run, numbered, and which of them the model never read.

    Every result gets the next number (1, 2, ... in the order the results are
    added to the conversation), withheld or not, so a reference means the
    same thing to the model, to the trace and to the run.
    """

    count: int = 0
    withheld: dict[int, _Withheld] = field(default_factory=dict)

    def admit(self, tool: str, text: str, sources: frozenset[Source]) -> tuple[int, str | None]:
        """Number a result; return the number and the placeholder the model reads instead.

        The placeholder is ``None`` for a trusted result (the model reads it).
        """
        self.count += 1
        bad = untrusted(sources)
        if not bad:
            return self.count, None
        self.withheld[self.count] = _Withheld(tool, text, sources)
        placeholder = render("withheld", number=str(self.count), tool=tool, origin=describe(bad))
        return self.count, placeholder

    def resolve(self, arguments: Mapping[str, Any]) -> Resolved:
        """Fill in the references to withheld results in a call's arguments.

        An argument that is exactly ``"$n"`` receives the result's text; a
        reference inside a longer string is replaced by that text. A ``$n``
        naming no withheld result is left as written (``"$5"`` may mean five
        dollars).
        """
        filled: dict[str, Any] = {}
        sources: dict[str, frozenset[Source]] = {}
        references: dict[str, tuple[int, ...]] = {}
        for name, value in arguments.items():
            found: list[int] = []
            filled[name] = self._fill(value, found)
            if found:
                references[name] = tuple(found)
                sources[name] = frozenset().union(*(self.withheld[n].sources for n in found))
        return Resolved(filled, sources, references)

    def fill_answer(self, text: str) -> tuple[str, frozenset[Source]]:
        """The answer with withheld results written in, and the sources that adds."""
        found: list[int] = []
        answer = self._fill_text(text, found)
        added = frozenset().union(*(self.withheld[n].sources for n in found))
        return answer, added

    def _fill(self, value: Any, found: list[int]) -> Any:
        if isinstance(value, str):
            return self._fill_text(value, found)
        if isinstance(value, list):
            return [self._fill(v, found) for v in value]
        if isinstance(value, dict):
            return {k: self._fill(v, found) for k, v in value.items()}
        return value

    def _fill_text(self, text: str, found: list[int]) -> str:
        def one(match: re.Match[str]) -> str:
            number = int(match.group(1))
            held = self.withheld.get(number)
            if held is None:
                return match.group(0)
            found.append(number)
            return held.text

        return _REFERENCE.sub(one, text)
