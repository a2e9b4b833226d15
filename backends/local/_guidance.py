"""Constrained decoding with llguidance: JSON Schemas as token masks and forced tokens.

A request constrained to a JSON Schema gets a :class:`Constraint`: an llguidance
matcher over the model's vocabulary that, before each sampled token, says which
tokens may come next (a bitmask the engine applies to the logits, so temperature
and top-p sampling still pick among the allowed tokens), and after it, which
tokens the grammar forces (the engine appends those without sampling them:
jump-forward decoding).

The JSON is exact and laid out as ``json.dumps`` writes it: one space after each
comma and colon and no other whitespace, strings without raw control characters,
numbers as JSON numbers, keys in the schema's order. A schema
llguidance cannot compile is a :class:`~plait.errors.ConfigError` that names the
part of the schema at fault, raised before the engine sees the request.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import llguidance

from plait.errors import ConfigError

from ._repeats import kept_text, loop_end

__all__ = ["Constraint", "compile_schema", "lltokenizer_from_llama", "lltokenizer_from_pieces"]

# JSON as ``json.dumps`` writes it, the form the tool prompt and earlier turns show
# the model: one space after each comma and colon, none anywhere else. (Compact
# JSON reads differently to a small model: it kept adding calls after the first.)
_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_CACHE_SIZE = 64


def lltokenizer_from_llama(llama: Any) -> llguidance.LLTokenizer:
    """The llguidance tokenizer of a loaded ``llama_cpp.Llama`` (about 0.3 s; cache it).

    Every end-of-generation token of the model counts as the grammar's end.
    """
    import llama_cpp
    from llguidance.llamacpp import lltokenizer_from_vocab

    vocab = llama._model.vocab
    n = int(llama_cpp.llama_vocab_n_tokens(vocab))
    eog = [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    with warnings.catch_warnings():
        # It reads each token's attributes through a binding llama-cpp-python marks
        # deprecated: one warning per token of the vocabulary, none of them ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(vocab, eos_token=eog or None)


class _Pieces:
    """What ``llguidance.TokenizerWrapper`` reads: token bytes, specials, a tokenizer."""

    def __init__(
        self,
        pieces: Sequence[bytes],
        eos: int,
        bos: int | None,
        special: Sequence[int],
        encode: Any,
    ) -> None:
        self.tokens = list(pieces)
        self.eos_token_id = eos
        self.bos_token_id = bos
        self.special_token_ids = list(special)
        self._encode = encode

    def __call__(self, text: bytes | str) -> list[int]:
        return list(self._encode(text.encode() if isinstance(text, str) else text))


def lltokenizer_from_pieces(
    pieces: Sequence[bytes],
    *,
    eos: int,
    bos: int | None,
    special: Sequence[int],
    encode: Any,
) -> llguidance.LLTokenizer:
    """An llguidance tokenizer from each token's bytes and an ``encode(bytes)`` function."""
    wrapper = llguidance.TokenizerWrapper(_Pieces(pieces, eos, bos, special, encode))
    return llguidance.LLTokenizer(wrapper)


class _Compiled:
    """A schema's grammar, compiled once for one tokenizer; new matchers are copies."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, matcher: llguidance.LLMatcher) -> None:
        self.tokenizer = tokenizer  # held, so its id is not reused while cached
        self._template = matcher
        self._lock = threading.Lock()

    def matcher(self) -> llguidance.LLMatcher:
        with self._lock:
            return self._template.deep_copy()


# How near the token limit (in tokens) the constraint starts checking that the
# JSON can still be closed; the check costs a short greedy walk of the matcher.
_CLOSE_HORIZON = 64
# Candidates for the shortest closing, best first: inside a string, close it
# (with the containers around it at once where a token does that); outside,
# close containers, then the shortest values, then open a string (a key).
_IN_STRING = ('"}]}', '"}]', '"}}', '"]}', '"}', '"]', '"', "a", "0")
_OUTSIDE = ("}]}", "}]", "]}", "}}", "}", "]", "0", "false", "null", "[]", "{}", '""', '"')


@dataclass(frozen=True)
class _Closers:
    in_string: tuple[int, ...]
    outside: tuple[int, ...]


_closers_cache: dict[int, tuple[llguidance.LLTokenizer, _Closers]] = {}


def _closers(tokenizer: llguidance.LLTokenizer) -> _Closers:
    """The single tokens of this vocabulary that spell each closing candidate."""
    cached = _closers_cache.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]

    def single(texts: tuple[str, ...]) -> tuple[int, ...]:
        found = []
        for text in texts:
            tokens = tokenizer.tokenize_str(text)
            if len(tokens) == 1:
                found.append(tokens[0])
        return tuple(found)

    closers = _Closers(in_string=single(_IN_STRING), outside=single(_OUTSIDE))
    _closers_cache[id(tokenizer)] = (tokenizer, closers)
    return closers


def _first_allowed(bits: bytes) -> int | None:
    """The lowest token a bitmask allows (``None``: none)."""
    for i, byte in enumerate(bits):
        if byte:
            return i * 8 + (byte & -byte).bit_length() - 1
    return None


def _string_state(state: tuple[bool, bool], data: bytes) -> tuple[bool, bool]:
    """``(inside a JSON string, after a backslash)`` once ``data`` follows ``state``."""
    inside, escaped = state
    for byte in data:
        if escaped:
            escaped = False
        elif inside and byte == 0x5C:  # backslash
            escaped = True
        elif byte == 0x22:  # quote
            inside = not inside
    return inside, escaped


_compiled: OrderedDict[tuple[int, str], _Compiled] = OrderedDict()
_compiled_lock = threading.Lock()


def compile_schema(
    schema: dict[str, Any],
    tokenizer: llguidance.LLTokenizer,
    *,
    jump_forward: bool = True,
    repeat_guard: bool = True,
) -> Constraint:
    """A fresh constraint for one request whose output must match ``schema``.

    Compiled grammars are cached per tokenizer and schema (property order counts).

    Raises:
        ConfigError: llguidance cannot compile the schema; the message names where.
    """
    key = (id(tokenizer), json.dumps(schema))
    with _compiled_lock:
        compiled = _compiled.get(key)
        if compiled is not None and compiled.tokenizer is tokenizer:
            _compiled.move_to_end(key)
        else:
            compiled = None
    if compiled is None:
        grammar = _grammar(schema, "")
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
        if failed:
            where, why = _locate(schema, messages[0], tokenizer)
            raise ConfigError(
                f"the JSON Schema cannot constrain decoding: {why} (at {where or '/'}; "
                f"schema {key[1][:200]})"
            )
        compiled = _Compiled(tokenizer, llguidance.LLMatcher(tokenizer, grammar, log_level=0))
        with _compiled_lock:
            _compiled[key] = compiled
            while len(_compiled) > _CACHE_SIZE:
                _compiled.popitem(last=False)
    return Constraint(
        compiled.matcher(),
        jump_forward=jump_forward,
        closers=_closers(tokenizer),
        tokenizer=tokenizer,
        repeat_guard=repeat_guard,
    )


def _grammar(schema: Any, where: str) -> str:
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_OPTIONS)  # type: ignore[arg-type]
    except ValueError as e:
        raise ConfigError(f"the JSON Schema at {where or '/'} is not a JSON object ({e})") from e


_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "contains", "not", "if", "then", "else")


def _children(schema: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    for key in _SUBSCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                yield f"{where}/{key}/{name}", sub
    for key in _SUBSCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            for i, sub in enumerate(value):
                yield f"{where}/{key}/{i}", sub
    for key in _SUBSCHEMA_ONE:
        value = schema.get(key)
        if isinstance(value, dict):
            yield f"{where}/{key}", value


def _locate(schema: Any, message: str, tokenizer: llguidance.LLTokenizer) -> tuple[str, str]:
    """The deepest sub-schema (a JSON Pointer) that fails on its own with ``message``.

    A sub-schema that only fails alone because it refers elsewhere (``$ref``)
    fails with another message, so the search does not stop there.
    """
    where = ""
    node = schema
    while isinstance(node, dict):
        for path, child in _children(node, where):
            if not isinstance(child, dict):
                continue
            failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
                _grammar(child, path), tokenizer
            )
            if failed and messages[0] == message:
                where, node = path, child
                break
        else:
            break
    return where, message.strip().replace("\n", " ")


class Constraint:
    """One request's grammar state on the engine thread: masks, forced tokens, its end.

    Attributes:
        jump_forward: append forced tokens without sampling them.
        repeat_guard: end a string that loops (:mod:`._repeats`).
        mask_s: seconds spent computing masks and forced tokens.
        masks: masks computed.
        loops: each string the guard ended, as ``(what was written, what the
            reply keeps)`` (the bytes of the string's content).
    """

    def __init__(
        self,
        matcher: llguidance.LLMatcher,
        *,
        jump_forward: bool = True,
        closers: _Closers | None = None,
        tokenizer: llguidance.LLTokenizer | None = None,
        repeat_guard: bool = True,
    ) -> None:
        self._matcher = matcher
        self.jump_forward = jump_forward
        self.mask_s = 0.0
        self.masks = 0
        self.closed = False
        self._closers = closers
        self._tokenizer = tokenizer
        self._string: tuple[bool, bool] = (False, False)  # over every consumed token
        self._run: tuple[int, ...] = ()  # the tokens of the string being written
        self.repeat_guard = repeat_guard
        self.loops: list[tuple[bytes, bytes]] = []
        # Tokens that end a string (a quote, alone or with closing brackets).
        self._quotes = tuple(
            t
            for t in (closers.in_string if closers is not None else ())
            if tokenizer is not None and tokenizer.decode_bytes([t]).startswith(b'"')
        )

    def mask(self) -> bytes:
        """Which tokens may come next: bit ``t % 8`` of byte ``t // 8`` is token ``t``."""
        started = time.perf_counter()
        bits = self._matcher.compute_bitmask()
        if self.repeat_guard and self._string[0] and self._run:
            bits = self._end_loop(bits)
        self.mask_s += time.perf_counter() - started
        self.masks += 1
        return bits

    def _end_loop(self, bits: bytes) -> bytes:
        """``bits`` narrowed to the string's end when the string loops, else as given."""
        if loop_end(self._run) is None or self._tokenizer is None:
            return bits
        allowed = [t for t in self._quotes if bits[t // 8] >> (t % 8) & 1]
        if not allowed:
            return bits  # the string may not end here (a pattern, a minimum length)
        narrowed = bytearray(len(bits))
        for t in allowed:
            narrowed[t // 8] |= 1 << (t % 8)
        written = self._tokenizer.decode_bytes(list(self._run))
        self.loops.append((written, kept_text(written)))
        return bytes(narrowed)

    def consume(self, token: int) -> bool:
        """Advance past a sampled token; ``False``: the grammar does not allow it."""
        if not self._matcher.consume_token(token):
            return False
        self._track([token])
        return True

    def _track(self, tokens: Sequence[int]) -> None:
        if self._tokenizer is None:
            return
        for token in tokens:
            data = self._tokenizer.decode_bytes([token])
            before = self._string
            self._string = _string_state(before, data)
            # A token wholly inside one string joins its run; any other starts over.
            inside = before[0] and self._string[0] and b'"' not in data
            self._run = self._run + (token,) if inside else ()

    def close_instead(self, token: int, remaining: int) -> list[int] | None:
        """The shortest end of the output, consumed, when ``token`` would leave no room for one.

        Near the token limit a small model may keep adding array items or
        properties until the limit cuts its JSON off. Before each sampled token
        is taken, this checks that after it (and the tokens the grammar then
        forces) the output can still be completed within ``remaining`` tokens;
        when it cannot, the output is completed now instead, by the shortest
        ending a greedy walk finds (closing the open string and containers,
        filling what is required with the shortest values). Far from the limit
        it costs nothing.

        Returns:
            ``None``: take ``token`` as usual. Otherwise the tokens that complete
            the output (already consumed); ``token`` is dropped.
        """
        if self._closers is None or self._tokenizer is None or remaining > _CLOSE_HORIZON:
            return None
        started = time.perf_counter()
        try:
            matcher = self._matcher
            if matcher.try_consume_tokens([token]) != 1:
                return None  # not allowed: consume() reports it
            state = self._string, self._run
            self._track([token])
            after = list(matcher.compute_ff_tokens()) if self.jump_forward else []
            if after and not matcher.consume_tokens(after):
                after = []
            self._track(after)
            ending = self._ending(remaining)
            if ending is not None:
                matcher.rollback(len(ending))
            matcher.rollback(1 + len(after))
            self._string, self._run = state
            if ending is not None and 1 + len(after) + len(ending) <= remaining:
                return None
            now = self._ending(remaining)
            if now is None:
                return None  # no ending fits either way: let the limit cut it
            self.closed = True
            return now
        finally:
            self.mask_s += time.perf_counter() - started

    def _ending(self, limit: int) -> list[int] | None:
        """Complete the output greedily, consuming the tokens; ``None``: not within ``limit``."""
        assert self._closers is not None
        matcher = self._matcher
        state = self._string, self._run
        taken: list[int] = []
        while len(taken) <= limit:
            if matcher.is_accepting():
                return taken
            forced = list(matcher.compute_ff_tokens())
            if forced and matcher.consume_tokens(forced):
                taken += forced
                self._track(forced)
                continue
            candidates = self._closers.in_string if self._string[0] else self._closers.outside
            for candidate in candidates:
                if matcher.try_consume_tokens([candidate]) == 1:
                    taken.append(candidate)
                    self._track([candidate])
                    break
            else:
                allowed = _first_allowed(matcher.compute_bitmask())
                if allowed is None or not matcher.consume_token(allowed):
                    break
                taken.append(allowed)
                self._track([allowed])
        matcher.rollback(len(taken))
        self._string, self._run = state
        return None

    def draft_room(self, remaining: int) -> int:
        """How many tokens a speculative draft may hold with ``remaining`` tokens left.

        Accepted draft tokens skip :meth:`close_instead`, so drafts stop short of
        the last ``_CLOSE_HORIZON`` tokens, where each token must pass that check.
        """
        if self._closers is None or self._tokenizer is None:
            return remaining
        return max(0, remaining - _CLOSE_HORIZON - 1)

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many of ``tokens`` the grammar allows next, in order (nothing is consumed).

        Speculative drafts are cut there, so a draft never proposes what the mask
        would forbid.
        """
        started = time.perf_counter()
        n = int(self._matcher.validate_tokens(tokens))
        self.mask_s += time.perf_counter() - started
        return n

    def forced(self) -> list[int]:
        """The tokens the grammar forces next, already consumed (none without jump-forward)."""
        if not self.jump_forward:
            return []
        started = time.perf_counter()
        tokens = list(self._matcher.compute_ff_tokens())
        if tokens and not self._matcher.consume_tokens(tokens):
            tokens = []  # cannot happen for tokens the matcher itself forced
        self._track(tokens)
        self.mask_s += time.perf_counter() - started
        return tokens

    @property
    def done(self) -> bool:
        """Whether the output is complete: the grammar allows nothing but its end."""
        return self.closed or bool(self._matcher.is_stopped())

    @property
    def error(self) -> str:
        """Why the matcher failed (empty: it did not)."""
        return str(self._matcher.get_error())
