import json
import subprocess
import sys

import pytest

from plait import __version__
from plait.cli import main


def test_version_prints_versions(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert f"plait {__version__}" in out and "llama-cpp-python" in out


def test_missing_model_file_is_an_input_error_with_the_path(capsys, tmp_path):
    missing = tmp_path / "nope.gguf"
    assert main(["ask", "hi", "--model", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plait: error: cannot load model") and "nope.gguf" in err
    assert "Traceback" not in err


def test_invalid_schema_file_is_reported_with_line_and_column(capsys, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text('{\n  "type": "object",\n  oops\n}')
    assert main(["ask", "hi", "--schema", str(schema)]) == 2
    assert f"{schema}:3:3" in capsys.readouterr().err


def test_schema_that_is_not_json_schema_is_an_input_error(capsys, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "nonsense"}')
    assert main(["ask", "hi", "--schema", str(schema)]) == 2
    assert "response_schema" in capsys.readouterr().err


@pytest.mark.local_model
def test_console_script_answers_a_prompt_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "plait", "ask", "Say hello.", "--max-tokens", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    completion = json.loads(result.stdout)
    assert completion["usage"]["completion_tokens"] > 0 and completion["text"]


@pytest.mark.local_model
def test_doctor_reports_model_file_and_a_working_load(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "model file:" in out and ".gguf" in out
    assert "model load: ok" in out and "generation: ok" in out
