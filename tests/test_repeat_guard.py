"""The repetition guard inside JSON strings: a loop is cut, a legitimate repeat is kept."""

from __future__ import annotations

import json

from plait import ChatRequest
from plait.backends.local._repeats import keep_cut, kept_text, loop_end
from plait.backends.local.testing import FakeLlama
from plait.messages import UserMessage
from tests.test_structured_decoding import run, script

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def test_a_tail_of_four_copies_spanning_twelve_items_is_a_loop() -> None:
    assert loop_end([7] + [1, 2, 3] * 4) == 4  # cut after the block's first copy
    assert loop_end([1, 2, 3] * 3) is None  # three copies: not yet
    assert loop_end([5] * 11) is None  # four copies, but too short a span
    assert loop_end(list(range(30))) is None


def test_the_kept_text_ends_at_the_first_copy_of_the_longest_reaching_block() -> None:
    assert kept_text(b"Paris, Paris, Paris, Paris, Paris") == b"Paris"
    assert kept_text(b"7000000 7000000 7000000 7000000") == b"7000000"
    assert kept_text(b"The value is X X X X X X") == b"The value is X"
    assert keep_cut('{"a": "b b b b"}', [(b"b b b b", b"b")]) == '{"a": "b"}'


def test_a_looping_string_is_closed_and_the_json_goes_on() -> None:
    endless = '{"city": "' + "Paris, " * 60
    fake = FakeLlama(next_token=script(endless))
    job = run(fake, CITY, max_tokens=300)
    outcome = job.wait()
    assert outcome.finish == "eog"
    value = json.loads(job.text)
    assert value["city"].startswith("Paris, Paris, Paris, Paris")
    assert len(job.tokens) < 60  # stopped after four copies, far from the limit
    assert job.constraint.loops == [(value["city"].encode(), b"Paris")]


def test_without_the_guard_the_loop_runs_to_the_limit() -> None:
    endless = '{"city": "' + "Paris, " * 60
    job = run(FakeLlama(next_token=script(endless)), CITY, max_tokens=120, repeat_guard=False)
    job.wait()
    assert len(job.tokens) >= 115 and not job.constraint.loops


def test_legitimate_repeats_are_kept() -> None:
    for value in ("New York, New York", "ha ha ha ha", "4242 4242 4242 4242", "no, no, no"):
        wanted = json.dumps({"city": value})
        job = run(FakeLlama(next_token=script(wanted)), CITY)
        job.wait()
        assert job.text == wanted and not job.constraint.loops, value


async def test_the_backend_reply_keeps_the_loop_up_to_its_first_copy() -> None:
    fake = FakeLlama(reply='{"city": "' + "Lisbon Lisbon " * 40)
    backend = fake.backend()
    request = ChatRequest(
        messages=(UserMessage(content="Where?"),), response_schema=CITY, max_tokens=200
    )
    completion = await backend.complete(request)
    await backend.aclose()
    assert json.loads(completion.text) == {"city": "Lisbon"}
