"""What an agent run has read, how each source got there, and what it withholds from the model.

The run's sources decide which tool calls its policies allow; the trail says,
for a violation, how each source reached the run. In plan-then-execute mode
the untrusted results the model never reads wait in a :class:`Quarantine`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from plait.errors import ModelOutputError
from plait.messages import ToolCall, ToolMessage
from plait.provenance import USER, Source, current, describe, untrusted
from plait.tools import ToolOutcome

from ._quarantine import Quarantine

__all__ = ["ArgumentSources", "RunReads"]

ArgumentSources = dict[str, dict[str, frozenset[Source]]]
"""Per call id, per argument name: the sources a filled-in withheld result carried."""


class RunReads:
    """One run's provenance: its sources, their trail, and its quarantine.

    Args:
        quarantine: withhold untrusted results from the model (plan-then-execute).
        withheld: where to note each result or memory the model did not read
            (the trace's ``withheld`` list).
    """

    def __init__(self, *, quarantine: bool, withheld: list[str]) -> None:
        # Inside an executor task the task's inputs' sources; else the user's.
        given = current()
        self.sources: set[Source] = set(given) if given is not None else {USER}
        self.trail: dict[Source, list[str]] = {s: ["task input"] for s in self.sources}
        self.quarantine = Quarantine() if quarantine else None
        self.withheld = withheld

    def read(self, source: Source, how: str) -> None:
        """The run has read ``source`` (the first way it got here is the trail's)."""
        if source not in self.sources:
            self.sources.add(source)
            self.trail[source] = [how]

    def resolve(
        self, calls: Sequence[ToolCall], step: int
    ) -> tuple[list[ToolCall], ArgumentSources]:
        """The calls with references to withheld results filled in, and what each argument
        carries (plan-then-execute; in the default mode the calls as made)."""
        if self.quarantine is None:
            return list(calls), {}
        resolved: list[ToolCall] = []
        carried: ArgumentSources = {}
        for call in calls:
            try:
                arguments = call.parsed_arguments()
            except ModelOutputError:
                resolved.append(call)  # the runner reports the bad JSON
                continue
            filled = self.quarantine.resolve(arguments)
            if not filled.references:
                resolved.append(call)
                continue
            text = json.dumps(filled.arguments, ensure_ascii=False)
            resolved.append(call.model_copy(update={"arguments": text}))
            carried[call.id] = filled.sources
            for name, numbers in filled.references.items():
                refs = ", ".join(f"${n}" for n in numbers)
                for source in filled.sources[name]:
                    self.trail.setdefault(source, [f"{refs} passed to {call.name} (step {step})"])
        return resolved, carried

    def admit(
        self,
        outcome: ToolOutcome,
        carried: dict[str, frozenset[Source]] | None,
        step: int,
    ) -> ToolMessage:
        """What the model reads of a result; the run reads its sources (or withholds them)."""
        how = f"{outcome.call.name} result (step {step})"
        if self.quarantine is None:
            for source in outcome.sources:
                self.read(source, how)
            return outcome.message
        # A result derives from the tool and from what its arguments carried in.
        sources = outcome.sources.union(*(carried or {}).values())
        number, placeholder = self.quarantine.admit(outcome.call.name, outcome.content, sources)
        if placeholder is None:
            for source in sources:
                self.read(source, how)
            return outcome.message
        bad = untrusted(sources)
        for source in bad:
            self.trail.setdefault(source, [f"{how}, withheld as ${number}"])
        self.withheld.append(f"${number}: {how} ({describe(bad)})")
        return outcome.message.model_copy(update={"content": placeholder})

    def fill(self, text: str, *, structured: bool) -> str:
        """The answer with the withheld results it references written in (plan-then-execute).

        ``structured``: the answer is JSON for an output type, so results are
        filled inside the parsed values (a result's quotes and newlines cannot
        break the JSON).
        """
        if self.quarantine is None or not self.quarantine.withheld:
            return text
        if structured:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return text  # validation reports it and asks again
            filled = self.quarantine.resolve({"answer": parsed})
            added = filled.sources.get("answer", frozenset())
            text = json.dumps(filled.arguments["answer"], ensure_ascii=False)
        else:
            text, added = self.quarantine.fill_answer(text)
        for source in added:
            self.read(source, "withheld result written into the answer")
        return text
