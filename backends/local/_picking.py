"""Turning a row's logits into tokens: sample, verify drafts, hand out forced tokens.

Runs on the engine thread only, for the :class:`~._scheduler.Scheduler`, which
builds the batches; this module decides what each job's next tokens are once a
batch has produced its logits, hands every token to the job's callback, and
ends the job (through the scheduler's ``finish``) when its output is complete,
refused by its grammar, or stopped by its consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from plait.errors import BackendError, is_control_flow

from ._active import Active
from ._jobs import JobEnd
from ._runtime import Runtime

if TYPE_CHECKING:
    from ._guidance import Constraint

__all__ = ["TokenPicker"]


class TokenPicker:
    """Picks each running job's next tokens from the logits of the last batch.

    Args:
        runtime: the context whose logits, masks and samplers are read.
        finish: ends a job and tells it (the scheduler frees its sequence).
    """

    def __init__(self, runtime: Runtime, finish: Callable[[Active, JobEnd], None]) -> None:
        self._runtime = runtime
        self._finish = finish

    def advance(self, active: Active, index: int) -> None:
        job = active.job
        if active.sampler is None:
            return
        if job.on_logits is not None:
            row = self._runtime.logits(index)
            try:
                job.on_logits(row)
            except Exception as e:  # a broken consumer ends its own job only
                if is_control_flow(e):
                    raise
                self._finish(active, JobEnd(error=e))
                return
        constraint = job.constraint
        if constraint is not None:
            self._runtime.mask(index, constraint.mask())
        token = active.sampler.sample(index)
        if self._runtime.is_eog(token):
            self._finish(active, JobEnd(finish="eog"))
            return
        if constraint is not None:
            ending = constraint.close_instead(token, job.max_tokens - active.generated)
            if ending is not None:  # the token would leave no room to complete the JSON
                active.pending = []
                self.extend(active, ending)
                return
        if constraint is not None and not constraint.consume(token):
            self._finish(active, JobEnd(error=_forbidden(token, constraint)))
            return
        active.pending = [token]
        if self.emit(active, token) and constraint is not None:
            self.extend(active, constraint.forced())

    def verify(self, active: Active, first: int) -> None:
        """Keep the longest prefix of a draft that the job's sampler picks itself.

        The sampler picks at each draft position in turn (logits at ``first``,
        ``first + 1``, ...: the token before the draft, then each drafted token);
        while its pick equals the drafted token, that token is accepted (its KV
        cells are already right). The first pick that differs, or the pick after
        a wholly accepted draft, is the next token, sampled as usual. Greedy
        sampling thus gives the same tokens as decoding one at a time, and seeded
        sampling the same distribution. Cells of rejected draft tokens are removed.
        """
        assert active.sampler is not None and active.drafter is not None
        job, draft = active.job, active.draft
        constraint = job.constraint
        active.draft = []
        picked: list[int] = []
        ended = False
        # Under a grammar the matcher consumes each pick as it is made, so the mask
        # at the next position is the one decoding one token at a time would use.
        # An accepted token after which the grammar forces tokens (or ends) stops
        # verification: the forced tokens follow as in plain decoding.
        forced: list[int] | None = None
        for j in range(len(draft) + 1):
            if job.on_logits is not None:
                try:
                    job.on_logits(self._runtime.logits(first + j))
                except Exception as e:  # a broken consumer ends its own job only
                    if is_control_flow(e):
                        raise
                    self._finish(active, JobEnd(error=e))
                    return
            if constraint is not None:
                self._runtime.mask(first + j, constraint.mask())
            token = active.sampler.sample(first + j)
            if self._runtime.is_eog(token):
                ended = True
                break
            if constraint is not None and not constraint.consume(token):
                self._finish(active, JobEnd(error=_forbidden(token, constraint)))
                return
            picked.append(token)
            if j == len(draft) or token != draft[j]:
                break
            if constraint is not None:
                forced = constraint.forced()
                if forced or constraint.done:
                    break
                forced = None
        accepted = len(picked) if ended or forced is not None else len(picked) - 1
        active.drafter.verified(len(draft), accepted)
        keep = active.n_past - len(draft) + accepted  # the cells of accepted tokens stay
        if keep < active.n_past:
            self._runtime.seq_rm(active.entry.seq_id, keep)
            del active.entry.tokens[keep:]
        for token in picked:
            if not self.emit(active, token):
                return
        if ended:
            self._finish(active, JobEnd(finish="eog"))
        elif forced is not None:  # every pick is in the cache; the forced tokens come next
            active.pending = []
            self.extend(active, forced)
        else:
            active.pending = [picked[-1]]
            if constraint is not None:
                self.extend(active, constraint.forced())

    def extend(self, active: Active, forced: list[int]) -> None:
        """Hand out the tokens the grammar forced and queue them for the next batch."""
        for token in forced:
            active.forced += 1
            active.pending.append(token)
            if not self.emit(active, token):
                return
        constraint = active.job.constraint
        if constraint is not None and constraint.done:
            self._finish(active, JobEnd(finish="eog"))  # complete: nothing but its end is left

    def emit(self, active: Active, token: int) -> bool:
        """Give one generated token to the job; ``False``: the job ended."""
        job = active.job
        active.generated += 1
        if active.drafter is not None:
            active.history.append(token)
        try:
            keep_going = job.on_token(token)
        except Exception as e:  # a broken consumer ends its own job only
            if is_control_flow(e):
                raise
            self._finish(active, JobEnd(error=e))
            return False
        if not keep_going:
            self._finish(active, JobEnd(finish="stopped"))
            return False
        if active.generated >= job.max_tokens:
            complete = job.constraint is not None and job.constraint.done
            self._finish(active, JobEnd(finish="eog" if complete else "length"))
            return False
        return True


def _forbidden(token: int, constraint: Constraint) -> BackendError:
    """The error of a sampled token the output's grammar refuses (the mask was not kept)."""
    return BackendError(
        f"the sampler picked token {token}, which the output's grammar forbids "
        f"({constraint.error or 'outside the mask'})"
    )
