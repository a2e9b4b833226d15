import ast
import asyncio
from pathlib import Path

import pytest

from plait import errors


def test_every_error_is_a_plait_error_and_exported():
    for name in errors.__all__:
        if not name.startswith("is_"):
            assert issubclass(getattr(errors, name), errors.PlaitError)


USAGE = (
    errors.ConfigError,
    errors.WorkflowValidationError,
    errors.ModelLoadError,
    errors.PlanError,
    errors.ScriptExhausted,
)
RUN_TIME = (
    errors.BackendError,
    errors.ContextLengthExceeded,
    errors.BackendHTTPError,
    errors.BackendTimeout,
    errors.BackendUnavailable,
    errors.BackendProtocolError,
    errors.BackendStreamTruncated,
    errors.ModelOutputError,
    errors.ToolError,
    errors.ToolArgumentError,
    errors.ToolPermissionError,
    errors.ToolTimeout,
    errors.BudgetExceeded,
    errors.PolicyViolation,
    errors.WorkerFailed,
    errors.RemoteAgentError,
    errors.RemoteAgentProtocolError,
    errors.RemoteAgentTimeout,
    errors.RemoteAgentTooLarge,
    errors.MemoryGuardRejected,
    errors.MemoryStoreError,
    errors.MemoryAccessDenied,
)


def test_usage_errors_are_outside_the_run_time_group():
    for cls in USAGE:
        assert not issubclass(cls, errors.RunError), cls
    for cls in RUN_TIME:
        assert issubclass(cls, errors.RunError), cls
    exported = {getattr(errors, n) for n in errors.__all__ if not n.startswith("is_")}
    assert exported == {errors.PlaitError, errors.RunError, *USAGE, *RUN_TIME}


def test_usage_errors_are_recognised_as_such():
    for cls in (errors.ConfigError, errors.ScriptExhausted):
        assert errors.is_usage_error(cls("x"))
    assert errors.is_usage_error(errors.PlanError("x", task_id="1"))
    for error in (errors.ToolError("x"), errors.RunError("x"), ValueError("x")):
        assert not errors.is_usage_error(error)


def test_model_output_error_is_not_a_backend_error():
    # Agents raise it for answers that fail validation, whatever backend wrote them.
    assert not issubclass(errors.ModelOutputError, errors.BackendError)


def test_the_tree_in_the_docstring_names_every_error():
    for name in errors.__all__:
        if not name.startswith("is_"):
            assert name in errors.__doc__, name


def test_control_flow_is_cancellation_and_langgraph_bubble_ups():
    from langgraph.errors import GraphInterrupt, ParentCommand
    from langgraph.types import Command

    assert errors.is_control_flow(asyncio.CancelledError())
    assert errors.is_control_flow(KeyboardInterrupt())
    assert errors.is_control_flow(GraphInterrupt(()))
    assert errors.is_control_flow(ParentCommand(Command()))
    assert not errors.is_control_flow(ValueError("x"))
    assert not errors.is_control_flow(errors.ToolError("x"))


def test_every_exception_class_is_defined_in_errors_py():
    """Classes deriving from an exception live in plait/errors.py (private signals aside)."""
    known = {"Exception", "BaseException", "AssertionError", "RuntimeError", "ValueError"}
    known |= set(errors.__all__)
    root = Path(__file__).resolve().parents[1]
    strays = []
    for folder in ("plait", "agents", "backends", "graphs", "memory", "tools"):
        for path in (root / folder).rglob("*.py"):
            if path == root / "plait" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    bases = {
                        b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                        for b in node.bases
                    }
                    if bases & known:
                        strays.append(f"{path.relative_to(root)}: {node.name}")
    # An HTTP refusal that the serve app turns into a 4xx response: it never
    # reaches a caller of plait, so it is no part of the error tree.
    served = "plait/cli/serve/_service.py: ServeError"
    assert [s for s in strays if s != served] == []


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (errors.ConfigError("unknown key 'x'", location="flow.yaml:3:5"), "flow.yaml:3:5: unknown"),
        (errors.PlanError("depends on missing task 9", task_id="3"), "task 3: depends on"),
        (errors.ModelLoadError("/m.gguf", "no such file"), "cannot load model '/m.gguf'"),
        (errors.ContextLengthExceeded(5000, 4096, model="m"), "needs 5000 tokens"),
        (errors.BackendHTTPError(429, "slow down", url="http://x"), "HTTP 429 from http://x"),
    ],
)
def test_messages_say_what_and_where(error, text):
    assert text in str(error)


def test_backend_errors_share_a_base():
    for cls in (
        errors.ContextLengthExceeded,
        errors.BackendHTTPError,
        errors.BackendTimeout,
        errors.BackendUnavailable,
        errors.BackendProtocolError,
        errors.BackendStreamTruncated,
    ):
        assert issubclass(cls, errors.BackendError)


def test_model_output_error_shortens_long_raw_text_but_keeps_it():
    raw = "x" * 1000
    error = errors.ModelOutputError("bad", raw=raw)
    assert error.raw == raw
    assert len(str(error)) < 300
