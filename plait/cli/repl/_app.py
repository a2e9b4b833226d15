"""The terminal loop: prompt, history, multi-line input, completion, Ctrl-C handling."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys

from plait.settings import load_settings

from ._commands import Shell
from ._completion import ReplCompleter
from ._session import ReplSession

__all__ = ["MAX_INPUT_CHARS", "LineCap", "arun_repl", "prompt_session", "run_repl"]

MAX_INPUT_CHARS = 10_000
"""The most characters one REPL input may hold (longer pastes are cut and not sent)."""


def run_repl(session: ReplSession, *, history: Path | None = None) -> int:
    """Run the interactive REPL on ``session`` until ``/quit`` or Ctrl-D; return 0.

    Args:
        session: the agents, tools and backends to talk to.
        history: the history file (default: ``repl_history`` in the state folder,
            ``.plait/`` unless ``PLAIT_STATE_DIR`` says otherwise).
    """
    return asyncio.run(arun_repl(session, history=history))


async def arun_repl(session: ReplSession, *, history: Path | None = None) -> int:
    """:func:`run_repl` inside a running event loop."""
    history = history or load_settings().state_dir / "repl_history"
    history.parent.mkdir(parents=True, exist_ok=True)
    shell = Shell(session)
    cap = LineCap()
    prompt = prompt_session(shell, cap, history=FileHistory(str(history)))
    shell.say(
        f"plait repl — {session.source}. Talking to {session.current}; "
        "/help lists commands, Ctrl-D leaves."
    )
    while True:
        try:
            line = await prompt.prompt_async(f"{shell.session.current}> ")
        except KeyboardInterrupt:
            cap.dropped = 0
            continue  # Ctrl-C at the prompt drops the line, as in a shell
        except EOFError:
            break
        if cap.dropped:
            shell.error(cap.notice())
            cap.dropped = 0
            continue
        if not await _cancellable(shell, line):
            break
    return 0


class LineCap:
    """Bounds what one prompt may hold: a longer paste is cut, typing past the cap is dropped.

    A terminal layer that lays out one huge line is slow (a 100 KB paste took
    about a minute and gigabytes), so the input stops at ``limit`` characters;
    a cut line is not sent, and the user is told why.
    """

    def __init__(self, limit: int = MAX_INPUT_CHARS) -> None:
        self.limit = limit
        self.dropped = 0

    def fit(self, held: int, text: str) -> str:
        """The part of ``text`` that fits after ``held`` characters; the rest is counted."""
        room = max(0, self.limit - held)
        if len(text) <= room:
            return text
        self.dropped += len(text) - room
        return text[:room]

    def full(self, held: int) -> bool:
        return held >= self.limit

    def notice(self) -> str:
        return (
            f"the input was longer than {self.limit:,} characters "
            f"({self.dropped:,} more were cut), so nothing was sent; "
            "put long text in a file and let a files tool read it"
        )


def prompt_session(
    shell: Shell, cap: LineCap, *, history: History | None = None, **options: Any
) -> PromptSession[str]:
    """The REPL's prompt (``options`` go to ``PromptSession``: tests pass input and output)."""
    return PromptSession(
        history=history,
        completer=ReplCompleter(lambda: shell.session),
        key_bindings=_key_bindings(cap),
        prompt_continuation=lambda width, _line, _soft: "...".rjust(width - 1) + " ",
        **options,
    )


async def _cancellable(shell: Shell, line: str) -> bool:
    """Run one line as a task that Ctrl-C (SIGINT) cancels, leaving the REPL running."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(shell.handle(line))
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError):
        pass  # no signal handlers here (Windows, or not the main thread): Ctrl-C ends the REPL
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the REPL itself is being cancelled, not just this line
        shell.say("\n[cancelled]")
        return True
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass


def _key_bindings(cap: LineCap) -> KeyBindings:
    """A trailing backslash or Esc then Enter continues the input on a new line.

    Pastes and typing stop at ``cap`` (see :class:`LineCap`).
    """
    bindings = KeyBindings()

    @Condition
    def buffer_full() -> bool:
        from prompt_toolkit.application import get_app

        return cap.full(len(get_app().current_buffer.text))

    @bindings.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        text = event.data.replace("\r\n", "\n").replace("\r", "\n")
        event.current_buffer.insert_text(cap.fit(len(event.current_buffer.text), text))

    @bindings.add(Keys.Any, filter=buffer_full)
    def _drop(event: KeyPressEvent) -> None:
        cap.dropped += len(event.data)

    @Condition
    def ends_with_backslash() -> bool:
        from prompt_toolkit.application import get_app

        return get_app().current_buffer.document.text_before_cursor.endswith("\\")

    @bindings.add("enter", filter=ends_with_backslash)
    def _continue(event: KeyPressEvent) -> None:
        event.current_buffer.delete_before_cursor(1)
        event.current_buffer.insert_text("\n")

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings
