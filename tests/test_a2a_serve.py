"""``plait serve`` as an A2A agent, called by the a2a-sdk's own client (and by RemoteAgent).

The served app runs under uvicorn on a loopback port, in a thread of the test
process; the agents in the workflows answer from scripted backends.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _a2a_servers import Served, free_port
from a2a.client import ClientConfig, create_client
from a2a.helpers.proto_helpers import get_text_parts
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)

from plait import ChatRequest
from plait.agents import RemoteAgent
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.cli.serve import create_app
from plait.errors import RemoteAgentError
from plait.graphs import read_run

WRITER = """
description: Writes one sentence about a topic.
backends:
  fake: {kind: local}
agents:
  writer: {instructions: You write one sentence., backend: fake}
inputs:
  topic: {type: string}
workflow:
  kind: steps
  steps:
    - id: write
      agent: writer
      input: "Write about ${inputs.topic}."
"""

TWO_INPUTS = """
backends:
  fake: {kind: local}
agents:
  writer: {instructions: You write., backend: fake}
inputs:
  topic: {type: string}
  words: {type: integer}
workflow:
  kind: steps
  steps:
    - id: write
      agent: writer
      input: "Write ${inputs.words} words about ${inputs.topic}."
"""


@contextmanager
def served(
    folder: Path, files: dict[str, str], backends: dict[str, Any], token: str | None = None
) -> Iterator[Served]:
    paths = []
    for name, text in files.items():
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        paths.append(path)
    app = create_app(paths, backends=backends, runs_dir=folder / "runs", token=token)
    with Served(app, free_port()) as server:
        yield server


def message(text: str = "", data: dict[str, Any] | None = None) -> SendMessageRequest:
    parts = [Part(text=text)] if text else []
    if data is not None:
        from a2a.helpers.proto_helpers import new_data_part

        parts.append(new_data_part(data))
    return SendMessageRequest(message=Message(role=Role.ROLE_USER, message_id="m1", parts=parts))


async def test_the_sdk_client_streams_a_workflow_run_and_gets_its_task(tmp_path: Path) -> None:
    backend = ScriptedBackend(["Bees hum all day long."], name="fake")
    with served(tmp_path, {"writer": WRITER}, {"fake": backend}) as server:
        base = f"{server.url}/a2a/writer"
        client = await create_client(base, client_config=ClientConfig(streaming=True))
        try:
            card = client._card  # what the client resolved from the well-known path
            assert card.name == "writer"
            assert card.description == "Writes one sentence about a topic."
            assert card.supported_interfaces[0].url == f"{base}/"
            assert "topic (string, required)" in card.skills[0].description
            responses = [r async for r in client.send_message(message("bees"))]
            kinds = [r.WhichOneof("payload") for r in responses]
            task_id = next(r.task.id for r in responses if r.HasField("task"))
            texts = [
                "".join(get_text_parts(list(r.status_update.status.message.parts)))
                for r in responses
                if r.HasField("status_update")
            ]
            answer = [
                "".join(get_text_parts(list(r.artifact_update.artifact.parts)))
                for r in responses
                if r.HasField("artifact_update")
            ]
            task = await client.get_task(GetTaskRequest(id=task_id))
        finally:
            await client.close()
    assert kinds[0] == "task" and "artifact_update" in kinds
    assert responses[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert "step write (writer) started" in texts and "step write (writer) finished" in texts
    assert answer == ["Bees hum all day long."]
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_text_parts(list(task.artifacts[0].parts)) == ["Bees hum all day long."]
    # The A2A task is the durable run: same id, same record, its task beside it.
    record = read_run(task_id, tmp_path / "runs")
    assert record.status == "done" and record.answer == "Bees hum all day long."
    assert record.inputs == {"topic": "bees"}
    assert (tmp_path / "runs" / task_id / "a2a_task.json").is_file()


async def test_a_restarted_server_still_answers_tasks_get(tmp_path: Path) -> None:
    backend = ScriptedBackend(["Ants carry leaves."], name="fake")
    with served(tmp_path, {"writer": WRITER}, {"fake": backend}) as server:
        remote = RemoteAgent(server.url, name="writer")  # one workflow: the card at the root too
        result = await remote.arun('{"topic": "ants"}')
    assert result.output == "Ants carry leaves."
    (run_id,) = [p.name for p in (tmp_path / "runs").iterdir()]
    again = ScriptedBackend([], name="fake")
    with served(tmp_path, {"writer": WRITER}, {"fake": again}) as server:
        client = await create_client(f"{server.url}/a2a/writer")
        try:
            task = await client.get_task(GetTaskRequest(id=run_id))
        finally:
            await client.close()
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_text_parts(list(task.artifacts[0].parts)) == ["Ants carry leaves."]


async def test_cancelling_the_task_interrupts_the_run(tmp_path: Path) -> None:
    asked = threading.Event()  # set in the server's thread

    async def forever(request: ChatRequest) -> str:
        asked.set()
        await asyncio.Event().wait()
        return "never"

    backend = FunctionBackend(forever, name="fake")
    with served(tmp_path, {"writer": WRITER}, {"fake": backend}) as server:
        client = await create_client(f"{server.url}/a2a/writer")
        try:
            stream = client.send_message(message("slowness"))
            first = await anext(stream)
            task_id = first.task.id
            assert await asyncio.to_thread(asked.wait, 10)  # the run is at its model call
            cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
            await stream.aclose()
            task = await client.get_task(GetTaskRequest(id=task_id))
        finally:
            await client.close()
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert task.status.state == TaskState.TASK_STATE_CANCELED
    record = read_run(task_id, tmp_path / "runs")
    assert record.status == "interrupted"


async def test_inputs_from_data_parts_and_text_that_cannot_be_placed(tmp_path: Path) -> None:
    backend = ScriptedBackend(["Five words about the sea."], name="fake")
    with served(tmp_path, {"two": TWO_INPUTS}, {"fake": backend}) as server:
        client = await create_client(f"{server.url}/a2a/two")
        try:
            refused = [r async for r in client.send_message(message("the sea"))]
            done = [
                r async for r in client.send_message(message(data={"topic": "sea", "words": 5}))
            ]
        finally:
            await client.close()
    last = refused[-1].status_update.status
    assert last.state == TaskState.TASK_STATE_REJECTED
    assert "topic, words as a JSON object" in get_text_parts(list(last.message.parts))[0]
    assert done[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert "Write 5 words about sea." in backend.requests[0].messages[-1].content  # type: ignore[union-attr]


async def test_the_token_rule_covers_the_a2a_routes(tmp_path: Path) -> None:
    backend = ScriptedBackend(["Owls hoot."], name="fake")
    with served(tmp_path, {"writer": WRITER}, {"fake": backend}, token="s3cret") as server:
        card = f"{server.url}/a2a/writer/.well-known/agent-card.json"
        async with httpx.AsyncClient() as http:
            assert (await http.get(card)).status_code == 401
            rpc = await http.post(f"{server.url}/a2a/writer/", json={"jsonrpc": "2.0"})
            assert rpc.status_code == 401
        with pytest.raises(RemoteAgentError, match="401"):
            await RemoteAgent(f"{server.url}/a2a/writer").aconnect()
        remote = await RemoteAgent(f"{server.url}/a2a/writer", token="s3cret").aconnect()
        assert "bearer" in remote.card.security_schemes  # type: ignore[union-attr]
        result = await remote.arun("owls")
    assert result.output == "Owls hoot."
