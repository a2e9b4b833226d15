"""The terminal loop: prompt, history, multi-line input, completion, Ctrl-C handling."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from plait.settings import load_settings

from ._commands import Shell
from ._completion import ReplCompleter
from ._session import Session

__all__ = ["arun_repl", "run_repl"]


def run_repl(session: Session, *, history: Path | None = None) -> int:
    """Run the interactive REPL on ``session`` until ``/quit`` or Ctrl-D; return 0.

    Args:
        session: the agents, tools and backends to talk to.
        history: the history file (default: ``repl_history`` in the state folder,
            ``.plait/`` unless ``PLAIT_STATE_DIR`` says otherwise).
    """
    return asyncio.run(arun_repl(session, history=history))


async def arun_repl(session: Session, *, history: Path | None = None) -> int:
    """:func:`run_repl` inside a running event loop."""
    history = history or load_settings().state_dir / "repl_history"
    history.parent.mkdir(parents=True, exist_ok=True)
    shell = Shell(session)
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)),
        completer=ReplCompleter(lambda: shell.session),
        key_bindings=_key_bindings(),
        prompt_continuation=lambda width, _line, _soft: "...".rjust(width - 1) + " ",
    )
    shell.say(
        f"plait repl — {session.source}. Talking to {session.current}; "
        "/help lists commands, Ctrl-D leaves."
    )
    while True:
        try:
            line = await prompt.prompt_async(f"{shell.session.current}> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt drops the line, as in a shell
        except EOFError:
            break
        if not await _cancellable(shell, line):
            break
    return 0


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


def _key_bindings() -> KeyBindings:
    """A trailing backslash or Esc then Enter continues the input on a new line."""
    bindings = KeyBindings()

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
