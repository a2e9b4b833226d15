"""plait.evals: the BFCL-format loader and the AST-style grader, on hand-made cases."""

import json

import pytest

from plait.backends.testing import ScriptedBackend
from plait.errors import ConfigError
from plait.evals import (
    evaluate,
    grade_calls,
    json_schema_of_parameters,
    load_cases,
    normalize_text,
    run_case,
)
from plait.messages import ToolCall

WEATHER = {
    "name": "weather.current",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "description": "Forecast days.", "optional": True},
            "point": {"type": "tuple", "items": {"type": "float"}},
        },
        "required": ["city"],
    },
}
PARAMETERS = {"weather.current": json_schema_of_parameters(WEATHER["parameters"])}
EXPECTED = [{"weather.current": {"city": ["Paris", "Paris, France"], "unit": ["", "celsius"]}}]


def grade(calls, expected=EXPECTED):
    return grade_calls(calls, expected, PARAMETERS)


def test_the_right_call_passes_with_strings_compared_loosely():
    assert grade([("weather.current", {"city": "paris, FRANCE"})]).ok
    assert grade([("weather.current", {"city": "Paris", "unit": "Celsius"})]).ok


def test_a_wrong_value_fails_and_says_which():
    verdict = grade([("weather.current", {"city": "Rome"})])
    assert not verdict.ok and "'city'" in verdict.reason


def test_a_missing_optional_parameter_is_fine_but_a_missing_expected_one_is_not():
    assert grade([("weather.current", {"city": "Paris"})]).ok
    strict = [{"weather.current": {"city": ["Paris"], "unit": ["fahrenheit"]}}]
    verdict = grade([("weather.current", {"city": "Paris"})], strict)
    assert not verdict.ok and "'unit' missing" in verdict.reason


def test_an_extra_parameter_the_function_does_not_have_fails():
    verdict = grade([("weather.current", {"city": "Paris", "country": "FR"})])
    assert not verdict.ok and "unknown argument" in verdict.reason


def test_a_parameter_the_answer_does_not_constrain_may_be_given():
    # "days" is a parameter of the function the ground truth says nothing about.
    assert grade([("weather.current", {"city": "Paris", "days": 3})]).ok


def test_types_follow_the_schema_ints_count_as_floats_never_bools_as_numbers():
    expected = [{"weather.current": {"city": ["Paris"], "days": [3], "point": [[1.5, 2.0]]}}]
    assert grade(
        [("weather.current", {"city": "Paris", "days": 3, "point": [1.5, 2]})], expected
    ).ok
    verdict = grade([("weather.current", {"city": "Paris", "days": "3"})], expected)
    assert not verdict.ok and "should be integer" in verdict.reason
    verdict = grade([("weather.current", {"city": "Paris", "days": True})], expected)
    assert not verdict.ok
    # A small model may write a number too large for a float: graded, not a crash.
    verdict = grade([("weather.current", {"city": "Paris", "days": 10**400})], expected)
    assert not verdict.ok and "'days'" in verdict.reason
    huge = [{"weather.current": {"city": ["Paris"], "days": [10**400]}}]
    assert grade([("weather.current", {"city": "Paris", "days": 10**400})], huge).ok


def test_the_wrong_function_or_the_wrong_number_of_calls_fails():
    assert "expected 'weather.current'" in grade([("weather.forecast", {"city": "Paris"})]).reason
    assert "made 0 call(s)" in grade([]).reason
    two = [("weather.current", {"city": "Paris"})] * 2
    assert "made 2 call(s), expected 1" in grade(two).reason


def test_parallel_calls_match_in_any_order_one_to_one():
    expected = [
        {"weather.current": {"city": ["Oslo", "Paris"]}},
        {"weather.current": {"city": ["Paris"], "unit": ["", "celsius"]}},
    ]
    oslo = ("weather.current", {"city": "Oslo"})
    paris = ("weather.current", {"city": "Paris"})
    assert grade([oslo, paris], expected).ok
    # Paris fits both expectations; taking the first for it would leave Oslo
    # none, so the match has to be one to one over all calls.
    assert grade([paris, oslo], expected).ok
    assert not grade([paris, paris], [expected[0], {"weather.current": {"city": ["Oslo"]}}]).ok


def test_nested_objects_and_lists_compare_key_by_key_and_in_order():
    expected = [{"f": {"box": [{"w": [2], "h": ["", 1]}], "tags": [["a", "b"]]}}]
    assert grade_calls([("f", {"box": {"w": 2}, "tags": ["A", "b"]})], expected).ok
    assert not grade_calls([("f", {"box": {"w": 2, "d": 1}, "tags": ["a", "b"]})], expected).ok
    assert not grade_calls([("f", {"box": {"w": 2}, "tags": ["b", "a"]})], expected).ok


def test_normalize_text_drops_case_spaces_and_punctuation():
    assert normalize_text("New York, N.Y.") == normalize_text("new york ny")


def test_bfcl_types_become_json_schema():
    schema = PARAMETERS["weather.current"]
    assert schema["type"] == "object"
    assert schema["properties"]["point"] == {"type": "array", "items": {"type": "number"}}
    assert "optional" not in schema["properties"]["days"]


def _write_category(folder, cases, answers, category="multiple"):
    (folder / f"BFCL_v4_{category}.json").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    (folder / f"BFCL_v4_{category}_answers.json").write_text(
        "\n".join(json.dumps(a) for a in answers) + "\n"
    )


def test_load_cases_reads_both_files_and_maps_dotted_names(tmp_path):
    case = {
        "id": "multiple_0",
        "question": [[{"role": "user", "content": "Weather in Paris?"}]],
        "function": [WEATHER, {**WEATHER, "name": "weather_current"}],
    }
    _write_category(tmp_path, [case], [{"id": "multiple_0", "ground_truth": EXPECTED}])
    (loaded,) = load_cases(tmp_path, "multiple")
    assert loaded.request == "Weather in Paris?"
    names = loaded.tool_names()
    assert names == {"weather_current": "weather.current", "weather_current_2": "weather_current"}
    tools = loaded.toolset()
    assert tools.names == ["weather_current", "weather_current_2"]
    assert tools["weather_current"].parameters["properties"]["days"]["type"] == "integer"


def test_load_cases_errors_name_the_file_and_case(tmp_path):
    with pytest.raises(ConfigError, match="cannot read function-calling cases"):
        load_cases(tmp_path, "multiple")
    case = {"id": "multiple_0", "question": [[{"role": "user", "content": "x"}]], "function": []}
    _write_category(tmp_path, [case], [{"id": "other", "ground_truth": []}])
    with pytest.raises(ConfigError, match="'multiple_0' has no ground truth"):
        load_cases(tmp_path, "multiple")


async def test_run_case_grades_the_agents_call_and_maps_the_name_back(tmp_path):
    case = {
        "id": "multiple_0",
        "question": [[{"role": "user", "content": "Weather in Paris?"}]],
        "function": [WEATHER],
    }
    _write_category(tmp_path, [case, {**case, "id": "multiple_1"}], [
        {"id": "multiple_0", "ground_truth": EXPECTED},
        {"id": "multiple_1", "ground_truth": EXPECTED},
    ])  # fmt: skip
    cases = load_cases(tmp_path, "multiple")
    backend = ScriptedBackend(
        [
            ToolCall(name="weather_current", arguments={"city": "Paris"}),
            ToolCall(name="weather_current", arguments={"city": "Rome"}),
        ]
    )
    reports = await evaluate(cases, backend, tool_selection="model")
    summary = reports["multiple"].summary()
    assert summary["cases"] == 2 and summary["accuracy"] == 0.5 and summary["valid_rate"] == 1.0
    assert reports["multiple"].failures[0][0] == "multiple_1"
    # The call is required and the agent stops after it: one model turn per case.
    assert [r.tool_choice for r in backend.requests] == ["required", "required"]


async def test_a_reply_that_is_not_a_call_is_invalid(tmp_path):
    case = {
        "id": "multiple_0",
        "question": [[{"role": "user", "content": "Weather in Paris?"}]],
        "function": [WEATHER],
    }
    _write_category(tmp_path, [case], [{"id": "multiple_0", "ground_truth": EXPECTED}])
    (loaded,) = load_cases(tmp_path, "multiple")
    result = await run_case(loaded, ScriptedBackend(["It is sunny."]), tool_selection="model")
    assert not result.ok and not result.valid and "made 0 call(s)" in result.reason


def test_the_eval_command_reports_usage_errors_in_one_line(tmp_path, capsys):
    from plait.cli._main import main

    args = ["eval", "function-calling", "--data", str(tmp_path), "--categories", "multiple"]
    assert main(args) == 2
    assert "cannot read function-calling cases" in capsys.readouterr().err
    case = {"id": "multiple_0", "question": [[{"role": "user", "content": "x"}]], "function": []}
    _write_category(tmp_path, [case], [{"id": "multiple_0", "ground_truth": []}])
    assert main([*args, "--backend", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plait: error: --backend must be 'local' or the base URL")


def test_the_own_case_set_loads_and_its_answers_grade_right():
    from pathlib import Path

    from plait.evals import load_case_file

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "own_tools.jsonl"
    cases = load_case_file(path)
    assert len(cases) >= 60
    assert {c.category for c in cases} == {"own_simple", "own_multiple"}
    assert len({c.request for c in cases}) == len(cases)
    for case in cases:
        # The first allowed value of every expected argument (left out where
        # it may be) is a call the grader must accept.
        calls = []
        for expected in case.expected:
            ((name, arguments),) = expected.items()
            assert name in {f["name"] for f in case.functions}, case.id
            chosen = {k: v[0] for k, v in arguments.items() if v[0] != ""}
            calls.append((name, chosen))
        grade = grade_calls(calls, case.expected, case.parameters())
        assert grade.ok, (case.id, grade.reason)
    assert len(load_case_file(path, limit=5)) == 10


def test_load_case_file_names_the_file_and_the_missing_field(tmp_path):
    from plait.evals import load_case_file

    bad = tmp_path / "cases.jsonl"
    bad.write_text(json.dumps({"id": "x_0", "category": "x", "question": [[]]}) + "\n")
    with pytest.raises(ConfigError, match=r"cases.jsonl: case 'x_0' lacks function, ground_truth"):
        load_case_file(bad)
