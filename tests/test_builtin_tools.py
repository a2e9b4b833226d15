"""Built-in tools: calculator, workspace files, allow-listed HTTP; tool retrieval."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plait.errors import ToolError, ToolPermissionError
from plait.messages import ToolCall
from plait.tools import (
    EmbeddingScorer,
    ToolRetriever,
    ToolRunner,
    Toolset,
    Workspace,
    calculator,
    evaluate,
    file_tools,
    http_tools,
    tool,
)

# -- calculator ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2^10", 1024),
        ("7 / 2", 3.5),
        ("-3 ** 2", -9),
        ("sqrt(16) + abs(-2)", 6),
        ("max(1, 5, 3)", 5),
        ("round(pi, 2)", 3.14),
        ("10 % 4 + 9 // 2", 6),
    ],
)
def test_calculator_computes(expression, value):
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "(1).__class__",
        "open('/etc/passwd')",
        "[x for x in range(3)]",
        "'a' * 3",
        "lambda: 1",
        "x + 1",
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(ToolError):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    ["9 ** 9999", "9 ** 9 ** 9", "(10 ** 300) ** 2", "1 / 0", "sqrt(-1)", "1" * 600],
)
def test_calculator_refuses_what_it_cannot_compute(expression):
    with pytest.raises(ToolError):
        evaluate(expression)


@pytest.mark.parametrize("expression", ["1e309", "-1e309", "1e309 - 1e309", "max(1, 1e309-1e309)"])
def test_calculator_never_returns_inf_or_nan(expression):
    with pytest.raises(ToolError, match="not a finite number"):
        evaluate(expression)


@pytest.mark.parametrize("expression", ["max(1,2)", "min(4, -2) * 2"])
def test_calculator_evaluates_functions_of_several_arguments(expression):
    # The tool's argument pattern leaves commas out: with them the embedded model's
    # constrained expressions run away. evaluate() itself takes them.
    assert evaluate(expression) in (2, -4)


@pytest.mark.parametrize(("expression", "value"), [("-3+5", "2"), ("-2 * 3", "-6")])
async def test_calculator_tool_takes_commas_and_a_leading_minus(expression, value):
    runner = ToolRunner([calculator])
    outcome = await runner.run(ToolCall(name="calculator", arguments={"expression": expression}))
    assert (outcome.error, outcome.content) == (None, value)


async def test_calculator_as_a_tool():
    runner = ToolRunner([calculator])
    outcome = await runner.run(ToolCall(name="calculator", arguments={"expression": "6 * 7"}))
    assert outcome.content == "42"


# -- files -----------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    root = tmp_path / "ws"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello")
    return root


def test_files_read_and_write_inside_the_workspace(workspace):
    ws = Workspace(workspace)
    assert ws.read("docs/a.txt") == "hello"
    assert ws.read("./docs/a.txt") == "hello"
    assert ws.write("new/b.txt", "héllo") == 6
    assert (workspace / "new" / "b.txt").read_text() == "héllo"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../outside.txt", "'..'"),
        ("docs/../../outside.txt", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("", "empty path"),
    ],
)
def test_files_refuse_paths_that_leave_the_workspace(workspace, path, why):
    ws = Workspace(workspace)
    with pytest.raises(ToolPermissionError, match=why):
        ws.read(path)
    with pytest.raises(ToolPermissionError, match=why):
        ws.write(path, "x")
    assert (workspace.parent / "outside.txt").read_text() == "secret"


def test_files_refuse_symlinks_out(workspace):
    os.symlink(workspace.parent / "outside.txt", workspace / "link.txt")
    os.symlink(workspace.parent, workspace / "up")
    ws = Workspace(workspace)
    for path in ("link.txt", "up/outside.txt"):
        with pytest.raises(ToolPermissionError, match="symbolic link"):
            ws.read(path)
        with pytest.raises(ToolPermissionError, match="symbolic link"):
            ws.write(path, "overwritten")
    assert (workspace.parent / "outside.txt").read_text() == "secret"


def test_files_report_missing_files_and_folders(workspace):
    ws = Workspace(workspace)
    with pytest.raises(ToolError, match="no file 'nope.txt'"):
        ws.read("nope.txt")
    with pytest.raises(ToolError, match="is a folder"):
        ws.read("docs")


async def test_file_tools_through_the_runner(workspace):
    runner = ToolRunner(file_tools(workspace))
    wrote = await runner.run(
        ToolCall(name="write_file", arguments={"path": "out.txt", "content": "data"})
    )
    assert wrote.error is None and "wrote 4 bytes" in wrote.content
    read = await runner.run(ToolCall(name="read_file", arguments={"path": "out.txt"}))
    assert read.content == "data"
    refused = await runner.run(ToolCall(name="read_file", arguments={"path": "/etc/passwd"}))
    assert refused.error == "permission"


# -- http ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.com/")
            self.end_headers()
            return
        self._reply(200, {"path": self.path})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._reply(201, {"echo": body})

    def _reply(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_http_tools_refuse_every_host_by_default(server):
    runner = ToolRunner(http_tools())
    outcome = await runner.run(ToolCall(name="http_get", arguments={"url": server + "/x"}))
    assert outcome.error == "permission" and "allowed: none" in outcome.content


async def test_http_get_and_post_to_an_allowed_host(server):
    tools = http_tools(["127.0.0.1"])
    got = await tools["http_get"].acall({"url": server + "/items?id=3"})
    assert got.startswith("HTTP 200") and '"/items?id=3"' in got
    posted = await tools["http_post"].acall({"url": server + "/items", "body": {"a": 1}})
    assert posted.startswith("HTTP 201") and '{"echo": {"a": 1}}' in posted


async def test_http_does_not_follow_redirects_or_odd_schemes(server):
    tools = http_tools(["127.0.0.1"])
    redirected = await tools["http_get"].acall({"url": server + "/redirect"})
    assert redirected.startswith("HTTP 302")
    with pytest.raises(ToolPermissionError, match="scheme 'file'"):
        await tools["http_get"].acall({"url": "file:///etc/passwd"})
    with pytest.raises(ToolPermissionError, match="'localhost:1' is not allowed"):
        await tools["http_get"].acall({"url": "http://localhost:1/"})


async def test_http_allow_list_can_pin_a_port(server):
    port = server.rsplit(":", 1)[1]
    tools = http_tools([f"127.0.0.1:{port}"])
    assert (await tools["http_get"].acall({"url": server + "/"})).startswith("HTTP 200")
    with pytest.raises(ToolPermissionError):
        await tools["http_get"].acall({"url": "http://127.0.0.1:1/"})


# -- retrieval -------------------------------------------------------------------


def _many_tools() -> Toolset:
    topics = {
        "weather_forecast": "Weather forecast for a city: rain, temperature, wind.",
        "stock_price": "Current stock price of a company ticker.",
        "translate_text": "Translate text between languages.",
        "send_email": "Send an email message to a recipient.",
        "convert_currency": "Convert an amount of money between currencies.",
        "search_flights": "Search flights between two airports on a date.",
    }
    made = []
    for name, doc in topics.items():

        def fn(query: str) -> str:
            return query

        fn.__doc__ = doc
        made.append(tool(name=name)(fn))
    return Toolset(made)


async def test_lexical_retrieval_picks_relevant_tools():
    retriever = ToolRetriever(_many_tools(), k=2, always=["send_email"])
    chosen = await retriever.select("Will it rain in Oslo tomorrow? What temperature?")
    assert chosen.names == ["send_email", "weather_forecast"]
    chosen = await retriever.select("How many euros is 100 dollars? convert currencies")
    assert chosen.names[1] == "convert_currency"


async def test_embedding_scorer_plugs_in():
    # A toy embedding: counts of a few marker words, enough to check the wiring.
    markers = ["flight", "stock", "email"]

    async def embed(texts):
        return [[float(t.lower().count(m)) + 0.01 for m in markers] for t in texts]

    retriever = ToolRetriever(_many_tools(), k=1, scorer=EmbeddingScorer(embed))
    chosen = await retriever.select("book a flight to Rome")
    assert chosen.names == ["search_flights"]


def test_retriever_limits_what_an_agent_is_offered():
    from plait.agents import Agent
    from plait.backends.testing import ScriptedBackend

    backend = ScriptedBackend(["ok"])
    retriever = ToolRetriever(_many_tools(), k=2)
    Agent("a", "Help.", backend, retriever=retriever).run("Translate this text into French")
    offered = [t.name for t in backend.requests[0].tools]
    assert len(offered) == 2 and offered[0] == "translate_text"
