"""A task runner over plain functions: the smallest way to run a plan."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ._config import TaskRunner
from ._plan import Task

__all__ = ["tool_runner"]


def tool_runner(functions: Mapping[str, Any]) -> TaskRunner:
    """A runner calling plain (sync or async) functions by tool name, with keyword args."""

    async def run(task: Task, args: dict[str, Any]) -> Any:
        result = functions[task.tool](**args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return run
