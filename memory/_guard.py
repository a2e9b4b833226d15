"""MemoryGuard: write policy, consensus validation at read time, and lessons (A-MemGuard).

A poisoned record usually looks harmless on its own and only bites in a specific
context, so judging records one by one does not find it. Instead, for a query,
the guard asks a judge backend what each related record would lead the agent to
do, embeds those derived actions, and drops records whose action disagrees with
the consensus of the others. Each rejection is distilled into a lesson, stored in
a separate memory and checked first on later recalls, so a repeated attack is
rejected without asking the judge again.

Consensus is only as strong as the judge (with a 135M model it barely lowers
attack success). The defense that holds with any model is provenance: a
recalled record is a ``memory:<namespace>@<trust>`` source
(:mod:`plait.provenance`), the write policy's low trust makes tool- and
web-written records untrusted, and executor-enforced policies
(:mod:`plait.policies`) keep untrusted data away from side-effecting tools.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from plait import tracing
from plait._request_priority import current_request_priority
from plait._tasks import gather_or_raise
from plait.backends import Backend
from plait.chat import ChatRequest
from plait.errors import BackendError, ConfigError, MemoryGuardRejected, ModelOutputError
from plait.prompts import load_prompt

from ._embedders import Embedder, default_embedder
from ._records import MemoryKind, MemoryRecord, Provenance, RecalledMemory, SourceKind, Trust
from ._store import ChromaStore

if TYPE_CHECKING:
    from ._memory import Memory

__all__ = ["MemoryGuard", "Rejection", "WritePolicy"]

Stage = Literal["write", "lesson", "consensus"]


@dataclass(frozen=True)
class WritePolicy:
    """Trust given to writes by where their content came from.

    Attributes:
        low_trust_sources: sources stored with at most ``low`` trust.
        quarantine_sources: sources stored quarantined (never recalled unless asked).
    """

    low_trust_sources: frozenset[SourceKind] = frozenset(
        {SourceKind.TOOL, SourceKind.WEB, SourceKind.EXTERNAL}
    )
    quarantine_sources: frozenset[SourceKind] = frozenset()


@dataclass(frozen=True)
class Rejection:
    """A record the guard refused, and why.

    Attributes:
        record: the refused record.
        stage: ``write`` (quarantined), ``lesson`` (matched a lesson) or ``consensus``.
        reason: one sentence naming the cause.
        query: the recall query, for read-time rejections.
        at: Unix time of the rejection.
    """

    record: MemoryRecord
    stage: Stage
    reason: str
    query: str | None = None
    at: float = field(default_factory=time.time)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


class MemoryGuard:
    """Screens memory writes and recalls.

    Args:
        judge: backend that derives, per record, the action it would lead to
            (``None``: compare the records' own texts).
        lessons: memory holding lessons (default: namespace ``lessons`` in the store
            of the first memory this guard is given to).
        embedder: embeds derived actions (default: the offline default embedder).
        policy: write policy by source.
        strict: raise :class:`MemoryGuardRejected` after recording a rejection.
        margin: smallest gap below the reference agreement that counts as disagreeing.
        outlier_z: a voter is an outlier when its agreement is more than this many
            median absolute deviations below the group's median (robust to a noisy judge).
        low_trust_penalty: subtracted from the score of kept low-trust records, so they
            rank below trusted records of about the same relevance (in cosine units;
            the default embedder's relevant hits spread over roughly 0.1).
        lesson_threshold: similarity to a lesson above which a record is rejected.
        min_group: fewest candidates for which consensus is attempted.
        extra_candidates: how many records beyond ``k`` recall fetches for the vote.
        trusted_peers: how many of the best trusted records recall adds to the vote.
    """

    def __init__(
        self,
        judge: Backend | None = None,
        *,
        lessons: Memory | None = None,
        embedder: Embedder | None = None,
        policy: WritePolicy | None = None,
        strict: bool = False,
        margin: float = 0.02,
        outlier_z: float = 3.0,
        low_trust_penalty: float = 0.05,
        lesson_threshold: float = 0.95,
        min_group: int = 3,
        extra_candidates: int = 2,
        trusted_peers: int = 3,
    ) -> None:
        if min_group < 3:
            raise ConfigError(
                f"MemoryGuard min_group must be >= 3 to form a majority, got {min_group}"
            )
        self.judge = judge
        self._lessons = lessons
        self.embedder = embedder or default_embedder()
        self.policy = policy or WritePolicy()
        self.strict = strict
        self.margin = margin
        self.outlier_z = outlier_z
        self.low_trust_penalty = low_trust_penalty
        self.lesson_threshold = lesson_threshold
        self.min_group = min_group
        self.extra_candidates = extra_candidates
        self.trusted_peers = trusted_peers
        self.rejections: list[Rejection] = []
        self._store: ChromaStore | None = None
        self.judge_calls = 0

    @property
    def lessons(self) -> Memory:
        """The separate memory of lessons (created on first use)."""
        if self._lessons is None:
            from ._memory import Memory

            self._lessons = Memory("lessons", store=self._store, embedder=self.embedder)
        return self._lessons

    def attach(self, store: ChromaStore) -> None:
        """Keep lessons next to a guarded memory's records unless told otherwise."""
        if self._store is None:
            self._store = store

    # --- write policy -------------------------------------------------------------------

    def assess_write(self, record: MemoryRecord) -> MemoryRecord:
        """Lower the trust of a record from an untrusted source, or quarantine it."""
        source = record.provenance.source
        if source in self.policy.quarantine_sources:
            trust = Trust.QUARANTINED
        elif source in self.policy.low_trust_sources:
            trust = max(record.provenance.trust, Trust.LOW, key=lambda t: t.rank)
        else:
            return record
        if trust == record.provenance.trust:
            return record
        provenance = record.provenance.model_copy(update={"trust": trust})
        record = record.model_copy(update={"provenance": provenance})
        if trust == Trust.QUARANTINED:
            self._reject(Rejection(record, "write", f"quarantined: written from source {source}"))
        return record

    # --- read-time screening ------------------------------------------------------------

    async def screen(
        self, query: str, candidates: Sequence[RecalledMemory]
    ) -> tuple[list[RecalledMemory], list[Rejection]]:
        """Split recalled records into kept and rejected for ``query``.

        Raises:
            MemoryGuardRejected: in strict mode, when anything was rejected.
        """
        rejected: list[Rejection] = []
        remaining: list[RecalledMemory] = []
        for memory in candidates:
            lesson = await self._matching_lesson(memory.record)
            if lesson is None:
                remaining.append(memory)
            else:
                rejected.append(
                    Rejection(
                        memory.record,
                        "lesson",
                        f"matches lesson {lesson.id}: {lesson.metadata.get('reason', '')}",
                        query,
                    )
                )
        kept, dissent = await self._consensus(query, remaining)
        kept = sorted(kept, key=self._guarded_score, reverse=True)
        rejected.extend(dissent)
        for rejection in dissent:
            await self._learn(rejection)
        for rejection in rejected:
            self._reject(rejection)
        return kept, rejected

    def _guarded_score(self, memory: RecalledMemory) -> float:
        low = memory.record.provenance.trust.rank >= Trust.LOW.rank
        return memory.score - (self.low_trust_penalty if low else 0.0)

    async def consult_lessons(self, query: str, k: int = 3) -> list[RecalledMemory]:
        """Lessons relevant to a task, to put before an agent acts."""
        if await self.lessons.count() == 0:
            return []
        return await self.lessons.search(query, k=k, kinds=[MemoryKind.LESSON])

    async def derive_action(self, query: str, record: MemoryRecord) -> str:
        """What following ``record`` would make an agent do for ``query``."""
        if self.judge is None:
            return record.text
        prompt = load_prompt(__package__ or __name__, "derive_action").format(
            query=query, memory=record.text
        )
        self.judge_calls += 1
        try:
            completion = await self.judge.complete(
                ChatRequest.from_prompt(
                    prompt,
                    max_tokens=48,
                    temperature=0.0,
                    agent="memory-guard",
                    # A recall inside a task waits on this judge: the task's priority.
                    priority=current_request_priority(),
                )
            )
        except (BackendError, ModelOutputError):
            # A judge that fails must not block recall; the record speaks for itself.
            # (ModelOutputError is listed on its own: it is not a BackendError. A
            # budget refusal or a usage error is not a judge failure: it propagates.)
            return record.text
        return completion.text.strip() or record.text

    async def _consensus(
        self, query: str, group: list[RecalledMemory]
    ) -> tuple[list[RecalledMemory], list[Rejection]]:
        if len(group) < self.min_group:
            return group, []
        actions = await gather_or_raise(self.derive_action(query, m.record) for m in group)
        vectors = await self.embedder.embed_documents(list(actions))
        n = len(group)
        agree = [[_cosine(vectors[i], vectors[j]) for j in range(n)] for i in range(n)]
        trusted = [
            i for i, m in enumerate(group) if m.record.provenance.trust.rank < Trust.LOW.rank
        ]
        # Trusted records vote among themselves only when a judge turned them into
        # actions: raw texts on neighbouring topics differ without disagreeing.
        voters = list(range(n)) if self.judge is not None else []
        support = {i: statistics.fmean(agree[i][j] for j in voters if j != i) for i in voters}
        median = statistics.median(support.values()) if support else 0.0
        spread = statistics.median(abs(s - median) for s in support.values()) if support else 0.0
        vote_limit = median - max(self.margin, self.outlier_z * spread)
        # Low-trust records (tool output, web, other tenants: the usual channel for
        # injected memories) must be corroborated by the trusted ones to be used.
        reference = (
            statistics.fmean(agree[i][j] for i in trusted for j in trusted if i != j)
            if len(trusted) >= 2
            else None
        )
        kept: list[RecalledMemory] = []
        dissent: list[Rejection] = []
        for i, (memory, action) in enumerate(zip(group, actions, strict=True)):
            reason = None
            if i not in trusted and reference is not None:
                corroboration = statistics.fmean(agree[i][j] for j in trusted)
                if corroboration < reference - self.margin:
                    reason = (
                        f"low-trust memory not corroborated by {len(trusted)} trusted related "
                        f"memories (agreement {corroboration:.3f} < "
                        f"{reference - self.margin:.3f}); derived action {action[:120]!r}"
                    )
            if reason is None and i in support and support[i] < vote_limit:
                reason = (
                    f"derived action {action[:120]!r} disagrees with {n - 1} related memories "
                    f"(agreement {support[i]:.3f} < {vote_limit:.3f})"
                )
            if reason is None:
                kept.append(memory)
            else:
                dissent.append(Rejection(memory.record, "consensus", reason, query))
        return kept, dissent

    async def _matching_lesson(self, record: MemoryRecord) -> MemoryRecord | None:
        if await self.lessons.count() == 0:
            return None
        (vector,) = await self.embedder.embed_documents([record.text])
        hits = await self.lessons.store.query(self.lessons.namespace, vector, n=1)
        if hits and hits[0][1] >= self.lesson_threshold:
            return hits[0][0]
        return None

    async def _learn(self, rejection: Rejection) -> None:
        lesson = MemoryRecord(
            kind=MemoryKind.LESSON,
            text=rejection.record.text,
            importance=1.0,
            provenance=Provenance(
                source=SourceKind.SYSTEM, writer="memory-guard", trust=Trust.HIGH
            ),
            metadata={
                "reason": rejection.reason[:500],
                "trigger": rejection.query or "",
                "rejected_id": rejection.record.id,
            },
        )
        await self.lessons.add([lesson])

    def _reject(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)
        tracing.add_event(
            "plait.guard.rejected",
            {
                "plait.guard.stage": rejection.stage,
                "plait.guard.reason": rejection.reason,
                "plait.guard.record": rejection.record.id,
                "plait.guard.source": rejection.record.provenance.source,
                "plait.guard.query": tracing.content(rejection.query),
            },
        )
        if self.strict:
            raise MemoryGuardRejected(
                f"memory {rejection.record.id} ({rejection.record.provenance.source} from "
                f"{rejection.record.provenance.writer}) rejected at {rejection.stage}: "
                f"{rejection.reason}"
            )
