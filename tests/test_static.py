"""Static workflows (steps with depends_on, no planner) on the eager executor."""

import pytest

from plait.errors import ConfigError, PlanError
from plait.graphs import Approval, Plan, Task, run_directory, run_static


class Steps:
    """A runner recording its calls; ``broken`` steps fail until repaired."""

    def __init__(self, broken=()):
        self.calls: list[str] = []
        self.broken = set(broken)

    async def __call__(self, task, args):
        self.calls.append(task.id)
        if task.id in self.broken:
            raise RuntimeError(f"{task.id} broke")
        return f"{task.id}({','.join(str(v) for v in args.values())})"


PLAN = Plan(
    tasks=(
        Task(id="fetch", tool="t"),
        Task(id="parse", tool="t", args={"text": "$fetch"}),
        Task(id="notify", tool="t", depends_on=("parse",), requires_approval=True),
        Task(id="report", tool="t", args={"data": "${parse}"}),
    )
)


async def test_rerun_with_the_same_id_reuses_finished_steps(tmp_path):
    steps = Steps(broken={"report"})
    first = await run_static(PLAN, steps, run_id="wf", runs_dir=tmp_path, approvals={})
    assert first.outcomes["report"].status == "failed"
    assert first.awaiting == {"notify": {}}
    assert (tmp_path / "wf" / "results.sqlite").exists()

    steps.broken.clear()
    second = await run_static(
        PLAN,
        steps,
        run_id="wf",
        runs_dir=tmp_path,
        approvals={"notify": Approval(action="approve")},
    )
    assert second.ok
    assert second.results["report"] == "report(parse(fetch()))"
    # fetch and parse ran once; report ran again after its failure; notify after approval.
    assert sorted(steps.calls) == ["fetch", "notify", "parse", "report", "report"]


async def test_rejected_step_skips_only_its_dependants():
    plan = Plan(
        tasks=(
            Task(id="a", tool="t", requires_approval=True),
            Task(id="b", tool="t", args={"x": "$a"}),
            Task(id="c", tool="t"),
        )
    )
    steps = Steps()
    result = await run_static(
        plan, steps, approvals={"a": Approval(action="reject", reason="not today")}
    )
    assert result.outcomes["a"].error == "rejected by the reviewer: not today"
    assert result.outcomes["b"].status == "skipped" and result.outcomes["c"].status == "done"
    assert steps.calls == ["c"]


async def test_a_run_id_cannot_be_reused_for_another_plan(tmp_path):
    await run_static(PLAN, Steps(), run_id="wf", runs_dir=tmp_path, approvals={})
    changed = Plan(tasks=(Task(id="fetch", tool="t", args={"url": "x"}),))
    with pytest.raises(PlanError, match="task fetch: run 'wf' was started with a different plan"):
        await run_static(changed, Steps(), run_id="wf", runs_dir=tmp_path)


async def test_invalid_plan_and_run_id_are_refused(tmp_path):
    with pytest.raises(PlanError, match="unknown tool 't'"):
        await run_static(PLAN, Steps(), known_tools={"other"})
    with pytest.raises(ConfigError, match="run id '../x' cannot name a run folder"):
        run_directory("../x", tmp_path)
