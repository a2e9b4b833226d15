"""Constrained decoding with llguidance on FakeLlama: masks, forced tokens, their accounting."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema
import pytest

from plait import ChatRequest, ToolSpec
from plait.backends.local._engine import Engine, EngineOptions, Job
from plait.backends.local._guidance import Constraint, compile_schema
from plait.backends.local._sampling import SamplingParams
from plait.backends.local.testing import EOS, FakeLlama
from plait.errors import ConfigError
from tests._engine_jobs import WAIT_S, JobRecord

QUOTE, RBRACE, RBRACKET = (b + 3 for b in b'"}]')


class Run(JobRecord):
    """One constrained job on an engine and the tokens it produced."""

    def __init__(
        self,
        fake: FakeLlama,
        schema: dict[str, Any],
        max_tokens: int = 400,
        speculate: int = 0,
        **kw: Any,
    ):
        self.fake = fake
        self.constraint = compile_schema(schema, fake.guidance_tokenizer(), **kw)
        super().__init__()
        prompt = fake.tokenize(b"<|im_start|>assistant\n")
        self.job = Job(
            prompt=prompt,
            sampling=SamplingParams(temperature=0.0),
            max_tokens=max_tokens,
            on_token=self._token,
            on_done=self._done,
            constraint=self.constraint,
            speculate=speculate,
        )

    @property
    def text(self) -> str:
        return self.fake.text(self.tokens)


def engine_on(fake: FakeLlama, n_batch: int = 512) -> Engine:
    return fake.engine(EngineOptions(n_ctx=4096, n_seq_max=4, n_batch=n_batch))


def run(fake: FakeLlama, schema: dict[str, Any], n_batch: int = 512, **kw: Any) -> Run:
    engine = engine_on(fake, n_batch)
    job = Run(fake, schema, **kw)
    engine.submit(job.job)
    job.wait()
    engine.close()
    return job


def script(text: str) -> Callable[[Sequence[int]], int]:
    """A "model" that wants to write ``text`` after the prompt, whatever came before."""
    wanted = text.encode()
    start = len(b"<|im_start|>assistant\n") + 1  # and BOS

    def next_token(context: Sequence[int]) -> int:
        done = len(context) - start
        return wanted[done] + 3 if done < len(wanted) else EOS

    return next_token


CALL = {
    "type": "object",
    "properties": {
        "tool_calls": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"const": "calculator"},
                    "arguments": {
                        "type": "object",
                        "properties": {"expression": {"type": "string"}},
                        "required": ["expression"],
                        "additionalProperties": False,
                    },
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 8,
        }
    },
    "required": ["tool_calls"],
    "additionalProperties": False,
}


def test_forced_tokens_are_appended_in_one_row_and_counted():
    wanted = '{"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]}'
    fake = FakeLlama(next_token=script(wanted))
    job = run(fake, CALL)
    outcome = job.wait()
    assert outcome.error is None and outcome.finish == "eog"  # complete, no end token needed
    assert job.text == wanted
    prefix = '{"tool_calls": [{"name": "calculator", "arguments": {"expression": "'
    sampled = len("17 * 23") + len('"') + len("]")  # the rest is forced
    assert outcome.stats.forced_tokens == len(wanted) - sampled
    assert outcome.stats.sampled_tokens == sampled == len(fake.runtimes[0].masks)
    rows = [row for batch in fake.runtimes[0].batches for row in batch]
    # The last prompt token and the forced envelope prefix went in as one row.
    assert [len(row.tokens) for row in rows][:2] == [len(job.job.prompt) - 1, 1 + len(prefix)]


def test_without_jump_forward_every_token_is_sampled_under_the_mask():
    wanted = '{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}'
    fake = FakeLlama(next_token=script(wanted))
    job = run(fake, CALL, jump_forward=False)
    assert job.text == wanted
    assert job.wait().stats.forced_tokens == 0
    rows = [row for batch in fake.runtimes[0].batches for row in batch]
    assert max(len(row.tokens) for row in rows[1:]) == 1  # one token per decode row


def test_a_forced_run_longer_than_a_batch_is_split_across_steps():
    name = "a_tool_with_a_very_long_name_" * 4
    schema = {
        "type": "object",
        "properties": {"name": {"const": name}},
        "required": ["name"],
        "additionalProperties": False,
    }
    fake = FakeLlama(next_token=lambda context: EOS)  # it never gets to pick anything
    job = run(fake, schema, n_batch=32)
    assert json.loads(job.text) == {"name": name}
    assert job.wait().stats.forced_tokens == len(job.text)
    assert all(sum(len(r.tokens) for r in batch) <= 32 for batch in fake.runtimes[0].batches)


def test_max_tokens_cuts_a_forced_run():
    fake = FakeLlama(next_token=lambda context: EOS)
    job = run(fake, CALL, max_tokens=10)
    outcome = job.wait()
    assert outcome.finish == "length" and len(job.tokens) == 10
    assert job.text == '{"tool_cal'


def test_a_string_never_holds_a_raw_control_character():
    # The model wants a newline inside the string, then free text; the grammar
    # forbids both, so the fake's fallback (a closing quote) ends the string.
    wants = '{"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23\n'
    closers = (QUOTE, RBRACE, RBRACKET)
    fake = FakeLlama(
        next_token=script(wants),
        fallback=lambda allowed: next((t for t in closers if t in allowed), allowed[0]),
    )
    job = run(fake, CALL)
    value = json.loads(job.text)
    assert value["tool_calls"][0]["arguments"]["expression"] == "17 * 23"
    inside = compile_schema({"type": "string"}, fake.guidance_tokenizer())
    assert inside.consume(QUOTE)
    bits = inside.mask()
    assert not any(bits[(c + 3) // 8] >> ((c + 3) % 8) & 1 for c in range(32))


def test_a_schema_llguidance_cannot_compile_names_its_location():
    schema = {
        "type": "object",
        "properties": {"plan": {"type": "array", "items": {"type": "string", "format": "weird"}}},
    }
    fake = FakeLlama()
    with pytest.raises(ConfigError, match=r"Unknown format: weird \(at /properties/plan/items;"):
        compile_schema(schema, fake.guidance_tokenizer())


async def test_the_backend_rejects_such_a_schema_before_the_engine_sees_it():
    fake = FakeLlama(reply="{}")
    backend = fake.backend(n_ctx=1024, n_seq_max=2, structured="llguidance")
    bad = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    request = ChatRequest.from_prompt("Go.", response_schema=bad)
    with pytest.raises(ConfigError, match="/properties/a"):
        await backend.complete(request)
    assert not fake.runtimes or not fake.runtimes[0].batches


async def test_the_backend_counts_forced_tokens_in_usage_and_gbnf_stays_reachable():
    add = ToolSpec(
        name="add",
        description="Add two numbers.",
        parameters={"type": "object", "properties": {"a": {"type": "integer"}}},
    )
    fake = FakeLlama(reply='{"tool_calls": [{"name": "add", "arguments": {"a": 2}}]}')
    request = ChatRequest.from_prompt("Add 2.", tools=(add,), tool_choice="required")
    done = await fake.backend(n_ctx=1024, n_seq_max=2, structured="llguidance").complete(request)
    assert [(c.name, c.parsed_arguments()) for c in done.tool_calls] == [("add", {"a": 2})]
    assert 0 < done.usage.forced_tokens < done.usage.completion_tokens
    assert fake.runtimes[0].sampling[-1].grammar is None  # no GBNF on the default path
    old = FakeLlama(reply='{"tool_calls": [{"name": "add", "arguments": {"a": 2}}]}')
    done = await old.backend(n_ctx=1024, n_seq_max=2, structured="gbnf").complete(request)
    assert old.runtimes[0].sampling[-1].grammar is not None and not old.runtimes[0].masks
    assert done.usage.forced_tokens == 0
    with pytest.raises(ConfigError, match="structured decoding"):
        fake.backend(structured="regex")  # type: ignore[arg-type]


def test_cancelling_a_constrained_job_frees_its_sequence_and_sampler():
    release = threading.Event()
    calls: list[int] = []

    def slow(context: Sequence[int]) -> int:
        calls.append(1)
        if len(calls) == 2:
            assert release.wait(WAIT_S)
        return ord("7") + 3

    fake = FakeLlama(next_token=slow)
    engine = engine_on(fake)
    job = Run(fake, {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    engine.submit(job.job)
    job.job.cancelled.set()
    release.set()
    assert job.wait().finish == "cancelled"
    assert engine.call(lambda: fake.runtimes[0].open_samplers) == 0
    engine.close()


# -- property: every output of a generated schema parses and validates ----------------


def _schema(rng: random.Random, depth: int) -> dict[str, Any]:
    kinds = ["string", "integer", "number", "boolean", "null", "enum", "const"]
    if depth < 3:
        kinds += ["object", "object", "array", "anyOf"]
    kind = rng.choice(kinds)
    if kind in ("string", "integer", "number", "boolean", "null"):
        return {"type": kind}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", 3, True, None], rng.randint(1, 3))}
    if kind == "const":
        return {"const": rng.choice(["search", 42, 'a "quoted" name'])}
    if kind == "array":
        low = rng.randint(0, 2)
        return {
            "type": "array",
            "items": _schema(rng, depth + 1),
            "minItems": low,
            "maxItems": low + rng.randint(0, 2),
        }
    if kind == "anyOf":
        return {"anyOf": [_schema(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    names = rng.sample(["city", "n", "plan", "ok", "tasks", "why"], rng.randint(1, 3))
    return {
        "type": "object",
        "properties": {name: _schema(rng, depth + 1) for name in names},
        "required": rng.sample(names, rng.randint(0, len(names))),
        "additionalProperties": False,
    }


def _walker(rng: random.Random) -> Callable[[list[int]], int]:
    """A fallback that wanders through the grammar and heads for the end."""
    closers = (EOS, QUOTE, RBRACE, RBRACKET)

    def pick(allowed: list[int]) -> int:
        ends = [t for t in closers if t in allowed]
        if ends and rng.random() < 0.5:
            return rng.choice(ends)
        return rng.choice(allowed)

    return pick


@pytest.mark.parametrize("jump_forward", [True, False])
def test_every_output_of_a_generated_schema_parses_and_validates(jump_forward):
    rng = random.Random(1234)
    for _ in range(40):
        schema = _schema(rng, 0)
        fake = FakeLlama(next_token=lambda context: 0, fallback=_walker(rng))  # always masked
        job = run(fake, schema, jump_forward=jump_forward)
        outcome = job.wait()
        assert outcome.error is None and outcome.finish == "eog", (schema, job.text)
        value = json.loads(job.text)
        jsonschema.validate(value, schema)
        assert not _free_whitespace(job.text), job.text


def _free_whitespace(text: str) -> bool:
    """Whether ``text`` has whitespace outside its JSON strings, other than ``json.dumps``'s.

    ``json.dumps`` writes one space after each ``,`` and ``:`` and none elsewhere.
    """
    in_string = escaped = False
    before = ""
    for c in text:
        if in_string:
            escaped, in_string = (not escaped and c == "\\"), (escaped or c != '"')
        elif c == '"':
            in_string = True
        elif c in "\t\r\n" or (c == " " and before not in (",", ":")):
            return True
        before = c
    return False


def test_a_constraint_reports_completion_only_at_the_end():
    fake = FakeLlama()
    constraint: Constraint = compile_schema({"type": "boolean"}, fake.guidance_tokenizer())
    assert not constraint.done
    assert constraint.consume(ord("t") + 3)
    assert constraint.forced() == [ord(c) + 3 for c in "rue"]
    assert constraint.done


# -- the real embedded model (short; structure and validity, never exact words) -------


@pytest.fixture(scope="module")
def guided_backend(local_backend):  # noqa: ARG001 (loads the model first)
    """The session's embedded model, constrained through llguidance."""
    from plait.backends import LocalBackend

    return LocalBackend(n_ctx=2048, structured="llguidance")


@pytest.mark.local_model
async def test_the_calculator_call_for_17_times_23_parses_and_is_mostly_forced(guided_backend):
    from plait.tools import calculator

    request = ChatRequest.from_prompt(
        "What is 17 * 23?", tools=(calculator.spec,), tool_choice="required", temperature=0.0
    )
    done = await guided_backend.complete(request)
    assert done.finish_reason == "tool_calls" and done.tool_calls
    for call in done.tool_calls:  # a small model may add a second call; each one is valid
        assert call.name == "calculator"
        jsonschema.validate(call.parsed_arguments(), calculator.spec.parameters)
    # The envelope up to the expression's opening quote is forced, never sampled.
    assert done.usage.forced_tokens >= 10
    assert done.usage.forced_tokens > done.usage.completion_tokens - done.usage.forced_tokens


@pytest.mark.local_model
async def test_a_nested_response_schema_validates_at_any_temperature(guided_backend):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "mood": {"enum": ["happy", "sad", "calm"]},
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}, "done": {"type": "boolean"}},
                    "required": ["n", "done"],
                    "additionalProperties": False,
                },
            },
            "note": {"anyOf": [{"type": "string", "maxLength": 30}, {"type": "null"}]},
        },
        "required": ["title", "mood", "steps", "note"],
        "additionalProperties": False,
    }
    for temperature, seed in ((0.0, None), (0.9, 7)):
        request = ChatRequest.from_prompt(
            "Plan a short walk as JSON.",
            response_schema=schema,
            temperature=temperature,
            seed=seed,
            max_tokens=200,
        )
        done = await guided_backend.complete(request)
        jsonschema.validate(json.loads(done.text), schema)
        assert not _free_whitespace(done.text)


# -- budget-aware close: the JSON is complete even when max_tokens runs out ----------


def test_a_model_that_keeps_adding_calls_is_closed_before_the_token_limit():
    call = '{"name": "calculator", "arguments": {"expression": "1 + 1"}}'
    endless = '{"tool_calls": [' + ", ".join([call] * 20)  # it never closes the list
    for max_tokens in (90, 140, 200):  # cuts land at different places of an item
        fake = FakeLlama(next_token=script(endless))
        job = run(fake, CALL, max_tokens=max_tokens)
        outcome = job.wait()
        assert outcome.error is None and outcome.finish == "eog", max_tokens
        value = json.loads(job.text)
        jsonschema.validate(value, CALL)
        assert outcome.stats.decode_tokens <= max_tokens


def test_speculative_drafts_stop_short_of_the_limit_so_the_json_can_still_close():
    # A copy-heavy string is what drafts guess best; accepted draft tokens skip
    # the close check, so a draft that ran up to the limit would cut the JSON.
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    endless = '{"text": "' + "the cat sat on the mat. " * 40  # the string never ends
    drafted = 0
    for max_tokens in (60, 100, 150, 250):
        fake = FakeLlama(next_token=script(endless))
        # (The repetition guard would end this string early: off here.)
        job = run(fake, schema, max_tokens=max_tokens, speculate=8, repeat_guard=False)
        outcome = job.wait()
        assert outcome.error is None and outcome.finish == "eog", max_tokens
        jsonschema.validate(json.loads(job.text), schema)
        assert outcome.stats.decode_tokens <= max_tokens
        drafted += outcome.stats.drafted_tokens
    assert drafted > 0  # the drafts ran, far from the limit


def test_the_ending_fills_a_required_key_and_a_minimum_string_length():
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "string"}},
            "label": {"type": "string", "minLength": 2},
        },
        "required": ["items", "label"],
        "additionalProperties": False,
    }
    endless = '{"items": [' + ", ".join(['"abc"'] * 40)
    fake = FakeLlama(next_token=script(endless))
    job = run(fake, schema, max_tokens=60)
    assert job.wait().finish == "eog"
    value = json.loads(job.text)
    jsonschema.validate(value, schema)
    assert len(job.text) <= 60


def test_far_from_the_limit_nothing_is_closed_early():
    wanted = '{"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]}'
    fake = FakeLlama(next_token=script(wanted))
    job = run(fake, CALL, max_tokens=len(wanted))  # exactly enough: the model's own reply
    assert job.wait().finish == "eog"
    assert job.text == wanted
