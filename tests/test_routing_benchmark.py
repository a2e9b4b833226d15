"""The routing benchmark's ground truth and calculator (the parts that need no model)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import routing  # noqa: E402
from routing_tasks import make_tasks  # noqa: E402


def test_tasks_are_seeded_graded_and_answered_exactly():
    tasks = make_tasks(40, seed=3)
    assert tasks == make_tasks(40, seed=3) and tasks != make_tasks(40, seed=4)
    assert {t.level for t in tasks} == {1, 2, 3, 4}
    for task in tasks:
        if task.kind != "convert":
            expression = task.question.removeprefix("What is ").removesuffix("?")
            assert routing.calculate(expression) == task.answer


def test_calculator_refuses_anything_but_arithmetic():
    assert routing.calculate("(2 + 3) * 4 - 1 / 2") == 19.5
    for bad in ("__import__('os')", "2 ** 9999", "abs(-1)", "1 / 0", "2 +"):
        with pytest.raises(ValueError):
            routing.calculate(bad)


def test_unit_table_knows_both_directions():
    assert routing.unit_factor("hours", "minutes") == 60
    assert routing.unit_factor("minutes", "hours") == pytest.approx(1 / 60)
    assert routing.unit_factor("hours", "grams") is None
