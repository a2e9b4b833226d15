"""``plait version``, ``doctor`` and ``ask``: the model commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from plait._version import __version__
from plait.chat import ChatRequest
from plait.errors import ConfigError, PlaitError

__all__ = ["ask_command", "doctor_command", "version_command"]


def version_command(_args: argparse.Namespace) -> int:
    print(f"plait {__version__}")
    print(f"llama-cpp-python {_dist_version('llama-cpp-python')}")
    print(f"python {platform.python_version()}")
    return 0


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def doctor_command(args: argparse.Namespace) -> int:
    from plait.backends import LocalBackend

    version_command(args)
    backend = LocalBackend(args.model)
    try:
        path = backend.model_path
        print(f"model file: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    except (PlaitError, OSError) as e:
        print(f"model file: PROBLEM: {e}")
        return 1
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode().strip()
    print(f"llama.cpp: {info}")
    print(f"threads: {backend.n_threads} (PLAIT_N_THREADS, else the CPUs this process may use)")
    started = time.perf_counter()
    try:
        model = backend.load()
    except PlaitError as e:
        print(f"model load: PROBLEM: {e}")
        return 1
    print(f"model load: ok in {time.perf_counter() - started:.2f}s (context {model.n_ctx} tokens)")
    request = ChatRequest.from_prompt("Say hello.", max_tokens=16, temperature=0.0)
    completion = backend.complete_sync(request)
    timings, usage = completion.timings, completion.usage
    rate = usage.completion_tokens / timings.decode_s if timings.decode_s else 0.0
    print(
        f"generation: ok, {usage.prompt_tokens} prompt tokens, {usage.completion_tokens} generated"
        f" ({rate:.1f} tokens/s): {completion.text.strip()!r}"
    )
    return 0


def ask_command(args: argparse.Namespace) -> int:
    return asyncio.run(_ask_async(args))


async def _ask_async(args: argparse.Namespace) -> int:
    from plait.backends import LocalBackend

    schema: dict[str, Any] | None = None
    if args.schema:
        schema = _read_json(args.schema)
    request = ChatRequest.from_prompt(
        args.prompt,
        system=args.system,
        response_schema=schema,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )
    backend = LocalBackend(args.model)
    async for chunk in backend.stream(request):
        if chunk.completion is not None:
            completion = chunk.completion
        elif not args.json:
            print(chunk.delta, end="", flush=True)
    if args.json:
        print(completion.model_dump_json(indent=2))
        return 0
    usage, timings = completion.usage, completion.timings
    print(
        f"\n[{completion.model}: {usage.prompt_tokens} prompt tokens "
        f"({usage.cached_prompt_tokens} cached), {usage.generated_text()}, "
        f"{timings.total_s:.2f}s, finish: {completion.finish_reason}]",
        file=sys.stderr,
    )
    return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(e.msg, location=f"{path}:{e.lineno}:{e.colno}") from e
    if not isinstance(value, dict):
        raise ConfigError("a JSON Schema must be a JSON object", location=str(path))
    return value
