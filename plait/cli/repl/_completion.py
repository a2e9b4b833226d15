"""Tab completion: slash commands, then agent, tool or file names as the command takes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ._commands import COMMANDS
from ._session import ReplSession

__all__ = ["ReplCompleter", "candidates"]


def candidates(text: str, session: ReplSession) -> list[str]:
    """Completions for ``text`` (the input before the cursor), without file names.

    Commands complete while the first word is typed; after ``/use `` agent
    names, after ``/tools `` tool names.
    """
    if not text.startswith("/"):
        return []
    name, space, arg = text.partition(" ")
    if not space:
        return [c for c in COMMANDS if c.startswith(name)]
    command = COMMANDS.get(name)
    if command is None or " " in arg:
        return []
    choices: list[str] = []
    if command.completes == "agents":
        choices = list(session.agents)
    elif command.completes == "tools":
        choices = session.tools.names
    return [c for c in choices if c.startswith(arg)]


class ReplCompleter(Completer):
    """prompt_toolkit completer over the current session (which ``/load`` may replace).

    Args:
        session: returns the session to complete against.
    """

    def __init__(self, session: Callable[[], ReplSession]) -> None:
        self._session = session
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if "\n" in text:
            return
        name, space, arg = text.partition(" ")
        command = COMMANDS.get(name)
        if space and command is not None and command.completes == "paths":
            yield from self._paths.get_completions(Document(arg, len(arg)), complete_event)
            return
        typed = arg if space else name
        for choice in candidates(text, self._session()):
            meta = COMMANDS[choice].help if choice in COMMANDS and not space else ""
            yield Completion(choice, start_position=-len(typed), display_meta=meta)
