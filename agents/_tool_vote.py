"""Self-consistency for tool calls: k candidates for one call, canonicalised, voted on.

A small model filling arguments makes one guess per sample. Asked k times
over the same prompt (one batch on the local engine, where the candidates
share the prompt's KV cells), a value the request states tends to come up
more often than each wrong guess. Each candidate's calls are canonicalised
(:func:`canonical_calls`: the tool, its arguments with the schema's defaults
filled in, numbers and strings normalised), equal candidates are counted
together and the largest group wins. A tie goes to the group whose values
the request states most (:func:`grounding_score`), then to the earliest
candidate: candidate 0 is the turn's own request, as ``k=1`` sends it.

The rule is general: nothing here knows a tool, a benchmark or its wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from plait.backends import Backend
from plait.chat import ChatRequest
from plait.completions import Completion
from plait.errors import ConfigError, ModelOutputError

from ._selection import plain_numbers

__all__ = [
    "LOCAL_TOOL_SAMPLING",
    "SAMPLE_TEMPERATURE",
    "Candidate",
    "ToolVote",
    "sampled_requests",
    "candidate_of",
    "canonical_calls",
    "check_tool_sampling",
    "grounding_score",
    "resolve_tool_sampling",
    "vote_attributes",
    "vote_calls",
]

LOCAL_TOOL_SAMPLING = 1
"""Candidates per call on backends without native tool calls (the local engine),
unless an agent says otherwise; chosen by measurement (``docs/benchmarks.md``)."""

SAMPLE_TEMPERATURE = 0.7
"""The temperature of candidates 1..k-1 (candidate 0 keeps the turn's own):
high enough that samples differ where the model is unsure, low enough that a
small model still writes the values it is sure of."""

Candidate = tuple[tuple[str, Mapping[str, Any]], ...] | str
"""One candidate's calls as ``(tool name, arguments)``, or its text answer (no call)."""

VoteReason = Literal["unanimous", "majority", "grounding", "first", "only"]


class ToolVote(BaseModel):
    """How k candidates for one call were decided.

    Attributes:
        k: candidates drawn.
        candidates: each candidate's calls in canonical form (``""``: it failed:
            its reply was cut off or did not parse).
        votes: candidates equal to the winner (itself included).
        agreement: ``votes / k``.
        winner: the index of the candidate whose calls run.
        reason: why it won: ``unanimous`` (every candidate agrees), ``majority``
            (the largest group), ``grounding`` (a tie for the largest group, won
            by the values the request states), ``first`` (a tie grounding does
            not break: the earliest candidate), ``only`` (every other candidate failed).
        grounding: the winner's grounding score (0..1).
    """

    model_config = ConfigDict(frozen=True)

    k: int
    candidates: tuple[str, ...]
    votes: int
    agreement: float
    winner: int
    reason: VoteReason
    grounding: float


def check_tool_sampling(value: int | None, where: str) -> int | None:
    """``value`` if it is a valid ``tool_sampling`` (``None`` or a count >= 1).

    Raises:
        ConfigError: it is not; the message names ``where``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{where}: tool_sampling must be a whole number of candidates >= 1 "
            f"(1: one call, no vote), got {value!r}"
        )
    return value


def resolve_tool_sampling(value: int | None, backend: Backend) -> int:
    """The candidates a tool call on ``backend`` draws (``None``: the backend's default)."""
    if value is not None:
        return value
    return 1 if backend.capabilities.native_tool_calls else LOCAL_TOOL_SAMPLING


def sampled_requests(request: ChatRequest, k: int) -> list[ChatRequest]:
    """``request`` itself, then ``k - 1`` copies sampled at ``SAMPLE_TEMPERATURE``, distinct seeds.

    The seeds are fixed (1, 2, ... after the request's own), so a run repeats.
    """
    base = request.seed or 0
    temperature = max(request.temperature or 0.0, SAMPLE_TEMPERATURE)
    return [request] + [
        request.model_copy(update={"temperature": temperature, "seed": base + i})
        for i in range(1, k)
    ]


def _defaults(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` with each left-out parameter's schema default filled in."""
    filled = dict(arguments)
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, prop in properties.items():
            if name not in filled and isinstance(prop, Mapping) and "default" in prop:
                filled[name] = prop["default"]
    return filled


_EDGE = " \t\n.,;:!?'\""


def _normal(value: Any) -> Any:
    """A value as votes compare it: numbers by value, strings without case, spaces, end marks."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        # Without spaces: "17*23" is "17 * 23", "New York" is "new york ".
        return "".join(value.casefold().split()).strip(_EDGE)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in sorted(value.items())}
    return value


def canonical_calls(candidate: Candidate, schemas: Mapping[str, Mapping[str, Any]]) -> str:
    """One candidate as a string that is equal for equal calls.

    ``schemas`` maps tool names to their parameter schemas (for defaults). The
    calls' order does not count (parallel calls run in any order).
    """
    if isinstance(candidate, str):
        return json.dumps({"answer": _normal(candidate)}, ensure_ascii=False)
    calls = []
    for name, arguments in candidate:
        schema = schemas.get(name, {})
        calls.append(json.dumps([name, _normal(_defaults(arguments, schema))], ensure_ascii=False))
    return "[" + ", ".join(sorted(calls)) + "]"


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def grounding_score(candidate: Candidate, request: str) -> float:
    """How much of the candidate's argument values the request states, 0..1.

    The mean over its values: a string the request contains scores 1, else
    the share of its words the request has; a number among the request's
    numbers scores 1, else 0. Booleans and nulls are not scored. A text
    answer, or calls without scored values, score 0.
    """
    if isinstance(candidate, str):
        return 0.0
    text = " ".join(request.casefold().split())
    words = set(_WORD.findall(text))
    numbers = {float(n) for n in _NUMBER.findall(plain_numbers(request))}
    scores: list[float] = []
    for _, arguments in candidate:
        for leaf in _leaves(dict(arguments)):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int | float):
                try:
                    scores.append(1.0 if float(leaf) in numbers else 0.0)
                except OverflowError:  # an integer no request states
                    scores.append(0.0)
            elif isinstance(leaf, str):
                phrase = " ".join(leaf.casefold().split())
                if phrase and phrase in text:
                    scores.append(1.0)
                    continue
                own = _WORD.findall(phrase)
                scores.append(sum(w in words for w in own) / len(own) if own else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def candidate_of(completion: Completion) -> Candidate:
    """A completion's calls as ``(name, arguments)`` (arguments that do not parse: empty)."""
    if not completion.tool_calls:
        return completion.text
    calls = []
    for call in completion.tool_calls:
        try:
            arguments: Mapping[str, Any] = call.parsed_arguments()
        except ModelOutputError:
            arguments = {"": call.arguments}  # compared as written; the tool reports it
        calls.append((call.name, arguments))
    return tuple(calls)


def vote_calls(
    candidates: Sequence[Candidate | None],
    request: str,
    schemas: Mapping[str, Mapping[str, Any]],
) -> ToolVote | None:
    """Decide among ``candidates`` (``None``: one that failed); ``None`` when all failed.

    ``schemas`` maps tool names to their parameter schemas (:func:`canonical_calls`).
    """
    keys = ["" if c is None else canonical_calls(c, schemas) for c in candidates]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key:
            groups.setdefault(key, []).append(i)
    if not groups:
        return None
    grounding = {i: grounding_score(c, request) for i, c in enumerate(candidates) if c is not None}
    size = max(len(members) for members in groups.values())
    tied = [members for members in groups.values() if len(members) == size]
    reason: VoteReason
    if len(groups) == 1:
        members = tied[0]
        # Every candidate agrees, or all but the failed ones do.
        reason = "unanimous" if size == len(candidates) else "only" if size == 1 else "majority"
    elif len(tied) == 1:
        members = tied[0]
        reason = "majority"
    else:
        best = max(max(grounding[i] for i in m) for m in tied)
        top = [m for m in tied if max(grounding[i] for i in m) == best]
        members = top[0]  # groups are in order of their first candidate
        reason = "grounding" if len(top) == 1 else "first"
    # Within a group the calls are equal up to case and spacing: the member
    # the request grounds best runs, the earliest among equals.
    winner = max(members, key=lambda i: (grounding[i], -i))
    return ToolVote(
        k=len(candidates),
        candidates=tuple(keys),
        votes=size,
        agreement=round(size / len(candidates), 4),
        winner=winner,
        reason=reason,
        grounding=round(grounding[winner], 4),
    )


def vote_attributes(decided: ToolVote) -> dict[str, object]:
    """The span attributes of a vote (``plait.tool_sampling.*``)."""
    return {
        "plait.tool_sampling.k": decided.k,
        "plait.tool_sampling.agreement": decided.agreement,
        "plait.tool_sampling.votes": decided.votes,
        "plait.tool_sampling.winner": decided.winner,
        "plait.tool_sampling.reason": decided.reason,
        "plait.tool_sampling.grounding": decided.grounding,
    }
