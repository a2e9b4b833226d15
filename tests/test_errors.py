import pytest

from plait import errors


def test_every_error_is_a_plait_error_and_exported():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.PlaitError)


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
        errors.ModelLoadError,
        errors.ContextLengthExceeded,
        errors.BackendHTTPError,
        errors.BackendTimeout,
        errors.ModelOutputError,
    ):
        assert issubclass(cls, errors.BackendError)


def test_model_output_error_shortens_long_raw_text_but_keeps_it():
    raw = "x" * 1000
    error = errors.ModelOutputError("bad", raw=raw)
    assert error.raw == raw
    assert len(str(error)) < 300
