"""Prompt templates (package data in ``prompts/``) and the shared-part-first layout."""

from __future__ import annotations

from plait.prompts import load_prompt

__all__ = ["render", "system_prompt"]


def _template(name: str) -> str:
    return load_prompt(__package__ or __name__, name)


def render(template: str, /, **values: str) -> str:
    """Fill the template ``prompts/<template>.txt``."""
    return _template(template).format(**values)


def system_prompt(shared_context: str, name: str, instructions: str, extra: str = "") -> str:
    """The system prompt: shared team context first, then this agent's own part.

    Everything that is the same for every agent of a team comes first so that a
    prefix cache holds it once; what differs per agent comes last.
    """
    parts = [shared_context.strip(), render("agent", name=name, instructions=instructions.strip())]
    if extra:
        parts.append(extra.strip())
    return "\n\n".join(p for p in parts if p)
