import pytest
from pydantic import ValidationError

from plait.errors import PlanError
from plait.graphs import Plan, Task
from plait.graphs.dag import StreamingPlanParser, find_references, substitute


def plan(*tasks: Task) -> Plan:
    return Plan(tasks=tasks)


def test_references_become_dependencies():
    task = Task(id="3", tool="compare", args={"a": "$1", "b": ["${2}"], "c": {"d": "x ${name}"}})
    assert task.dependencies == {"1", "2", "name"}
    assert Task(id="2", tool="t", depends_on=("1",)).dependencies == {"1"}


def test_substitution_keeps_whole_values_and_formats_embedded_ones():
    args = {"n": "$1", "text": "total: $1 of ${2}", "items": ["$2"], "price": "$$5"}
    out = substitute(args, {"1": 42, "2": {"k": "v"}})
    assert out == {"n": 42, "text": 'total: 42 of {"k": "v"}', "items": [{"k": "v"}], "price": "$5"}
    assert find_references("$$5") == set()


def test_validation_names_the_cycle():
    cyclic = plan(
        Task(id="1", tool="t", depends_on=("3",)),
        Task(id="2", tool="t", args={"x": "$1"}),
        Task(id="3", tool="t", args={"x": "$2"}),
    )
    with pytest.raises(
        PlanError, match=r"dependency cycle (1 -> 2 -> 3 -> 1|2 -> 3 -> 1 -> 2|3 -> 1 -> 2 -> 3)"
    ):
        cyclic.validate_against()


def test_validation_names_the_task_with_a_bad_reference():
    with pytest.raises(PlanError, match="task 2: depends on missing task\\(s\\) 9"):
        plan(Task(id="1", tool="t"), Task(id="2", tool="t", args={"x": "$9"})).validate_against()


def test_validation_suggests_the_closest_tool_name():
    with pytest.raises(
        PlanError, match="task 1: unknown tool 'serch' \\(did you mean 'search'\\?\\)"
    ):
        plan(Task(id="1", tool="serch")).validate_against({"search", "add"})


def test_validation_reports_duplicates_and_argument_problems():
    with pytest.raises(PlanError, match="task 1: duplicate task id"):
        plan(Task(id="1", tool="t"), Task(id="1", tool="t")).validate_against()
    with pytest.raises(PlanError, match="task 1: bad arguments for 'add': b is required"):
        plan(Task(id="1", tool="add", args={"a": 1})).validate_against(
            check_args=lambda t: None if "b" in t.args else "b is required"
        )


def test_task_cannot_depend_on_itself():
    with pytest.raises(ValueError, match="depends on itself"):
        Task(id="1", tool="t", args={"x": "$1"})


def test_critical_path_width_and_mermaid():
    p = plan(
        Task(id="1", tool="a"),
        Task(id="2", tool="b"),
        Task(id="3", tool="c", args={"x": "$1"}),
        Task(id="4", tool="d", args={"x": "$3", "y": "$2"}),
    )
    path, length = p.critical_path({"1": 1.0, "2": 5.0, "3": 1.0, "4": 1.0})
    assert (path, length) == (["2", "4"], 6.0)
    assert p.critical_path()[0] == ["1", "3", "4"]
    assert p.width() == 2
    mermaid = p.to_mermaid()
    assert mermaid.startswith("flowchart TD") and "t1 --> t3" in mermaid and "t2 --> t4" in mermaid


def test_parser_emits_tasks_as_lines_complete():
    parser = StreamingPlanParser({"get_weather": ["city"]})
    assert parser.feed("Thought: two cities.\n1. get_weather(ci") == []
    (first,) = parser.feed('ty="Paris")\n2. get_')
    assert (first.id, first.tool, first.args) == ("1", "get_weather", {"city": "Paris"})
    second, third = parser.feed('weather("Rome")\n3. compare(a=$1, b=${2}, note="about $1")\n')
    assert second.args == {"city": "Rome"}
    assert third.args == {"a": "$1", "b": "${2}", "note": "about $1"}
    assert third.dependencies == {"1", "2"}
    assert parser.feed("4. join()\n5. late()\n") == [] and parser.finished


def test_parser_handles_the_last_line_without_newline_and_end_marker():
    parser = StreamingPlanParser()
    assert parser.feed("1. search(q='a, b')\n2. search(q='c')") != []
    assert [t.args for t in parser.close()] == [{"q": "c"}]
    assert StreamingPlanParser().feed("<END_OF_PLAN>\n1. x()\n") == []


def test_parser_errors_name_the_task():
    with pytest.raises(PlanError, match="task 2: cannot parse the arguments"):
        StreamingPlanParser().feed("1. a()\n2. b(x=)\n")
    with pytest.raises(PlanError, match="task 1: mystery got 1 positional"):
        StreamingPlanParser().feed("1. mystery(3)\n")


def test_task_fields_are_validated():
    with pytest.raises(ValidationError, match="id"):
        Task(id="bad id", tool="t")
