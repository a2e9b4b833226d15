"""``plait new NAME``: a workflow folder to start from (a YAML file, a tools module, a README)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from plait.errors import ConfigError

__all__ = ["new_command", "scaffold"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

WORKFLOW = """\
# {name}: a steps workflow on the embedded model (SmolLM2-135M, no network needed).
# A tool step counts the words of the text; an agent step writes about it.
#   plait validate {name}/workflow.yaml
#   plait run {name}/workflow.yaml --input text="agents and tools in one graph"
name: {name}

backends:
  small: {{kind: local, temperature: 0}}   # the embedded model; kind: openai for a server

tools:
  word_count: {{function: "tools:word_count"}}   # word_count in tools.py, beside this file

agents:
  writer:
    instructions: You write one short, friendly sentence.
    backend: small
    max_turn_tokens: 48

inputs:
  text:
    type: string
    default: plait runs agents and tools as one graph

workflow:
  kind: steps
  steps:
    - id: count
      tool: word_count
      args: {{text: "${{inputs.text}}"}}
    - id: sentence
      agent: writer
      input: "Write one sentence about this text of ${{count}} words: ${{inputs.text}}"
"""

TOOLS = '''\
"""Tools of the {name} workflow: plain Python functions, named in workflow.yaml as
``function: "tools:NAME"``. The type hints and the docstring become the tool's schema."""


def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text to count.
    """
    return len(text.split())
'''

README = """\
# {name}

A plait workflow: `workflow.yaml` (the steps, agents and backends) and `tools.py`
(its Python tools).

Check it, then run it (from the folder that holds `{name}/`):

```
plait validate {name}/workflow.yaml
plait run {name}/workflow.yaml --input text="agents and tools in one graph"
```

Progress goes to stderr and the answer to stdout; `plait runs list` shows past runs,
`plait runs show RUN_ID --html` draws one. The `small` backend is the embedded
model, so this runs offline; point an agent at `kind: openai` backends for more.
"""


def scaffold(name: str, parent: Path) -> Path:
    """Write the workflow folder ``parent/name`` and return it.

    Raises:
        ConfigError: ``name`` is not a usable folder name, or the folder exists
            and is not empty (nothing is overwritten).
    """
    if not _NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a workflow name: start with a letter, then letters, digits,"
            " '_' or '-' (at most 64 characters)"
        )
    folder = parent / name
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} already exists and is a file; pick another name")
    if folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(f"{folder} already exists and is not empty; pick another name")
    folder.mkdir(parents=True, exist_ok=True)
    for file, template in (
        ("workflow.yaml", WORKFLOW),
        ("tools.py", TOOLS),
        ("README.md", README),
    ):
        (folder / file).write_text(template.format(name=name), encoding="utf-8")
    return folder


def new_command(args: argparse.Namespace) -> int:
    """Scaffold a workflow folder in the current directory."""
    folder = scaffold(args.name, Path.cwd())
    print(f"created {folder}/ (workflow.yaml, tools.py, README.md)")
    print(f"  plait validate {args.name}/workflow.yaml")
    print(f'  plait run {args.name}/workflow.yaml --input text="agents and tools in one graph"')
    return 0
