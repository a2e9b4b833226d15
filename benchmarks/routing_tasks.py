"""Seeded task set for the routing benchmark: arithmetic and unit conversions of graded
difficulty, each with its exact answer computed here (programmatic ground truth)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CONVERSIONS", "Task", "make_tasks"]

# (unit, target unit, factor): value in unit * factor = value in target unit.
CONVERSIONS = [
    ("kilometers", "meters", 1000),
    ("meters", "centimeters", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("kilograms", "grams", 1000),
    ("liters", "milliliters", 1000),
    ("days", "hours", 24),
    ("feet", "inches", 12),
]


@dataclass(frozen=True)
class Task:
    """One question, its exact answer and its difficulty level (1 easiest)."""

    question: str
    answer: float
    level: int
    kind: str


def _level1(rng: random.Random) -> Task:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return Task(f"What is {a} + {b}?", a + b, 1, "add")


def _level2(rng: random.Random) -> Task:
    a, b = rng.randint(11, 99), rng.randint(11, 99)
    if rng.random() < 0.5:
        return Task(f"What is {a} + {b}?", a + b, 2, "add")
    c = rng.randint(2, 9)
    return Task(f"What is {a} * {c}?", a * c, 2, "mul")


def _level3(rng: random.Random) -> Task:
    unit, target, factor = rng.choice(CONVERSIONS)
    value = rng.choice([2, 3, 4, 5, 6, 7, 8, 1.5, 2.5, 3.5])
    return Task(f"Convert {value} {unit} to {target}.", value * factor, 3, "convert")


def _level4(rng: random.Random) -> Task:
    a, b, c, d = rng.randint(10, 60), rng.randint(10, 60), rng.randint(2, 9), rng.randint(1, 30)
    return Task(f"What is ({a} + {b}) * {c} - {d}?", (a + b) * c - d, 4, "multi")


def make_tasks(n: int, seed: int) -> list[Task]:
    """``n`` tasks, an equal share of each level, in a seeded shuffled order."""
    rng = random.Random(seed)
    makers = [_level1, _level2, _level3, _level4]
    tasks = [makers[i % len(makers)](rng) for i in range(n)]
    rng.shuffle(tasks)
    return tasks
