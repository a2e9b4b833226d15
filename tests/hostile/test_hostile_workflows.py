"""A corpus of hostile workflow files, each run through ``plait validate`` and ``plait run``.

Every file is generated here, in a temporary folder (no bomb is stored in git).
Each one goes through the real command line in its own process, with a
timeout: it must exit 2 with a message that says where (``file:line:column``),
print no traceback, not hang, and echo nothing from outside the workflow's
folder (a marker file next to it, and ``/etc/passwd``).

A few files are only wrong when their tool code runs (a module that raises at
import, a missing function): ``plait validate`` does not run tool code and
accepts them; ``plait run`` must still exit 2 with the entry's position.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

MARKER = "OUTSIDE-MARKER-9c41"  # in a file outside every workflow folder
INSIDE = "INSIDE-NOT-A-WORKFLOW-3e7a"  # in a file inside one that is not a workflow
PASSWD_LINE = re.compile(r"root:[^:\n]*:0:0:")
TIMEOUT_S = 120

GOOD = """\
backends:
  remote: {kind: openai, model: m, base_url: "http://127.0.0.1:9/v1", api_key_env: null}
tools:
  calc: {builtin: calculator}
agents:
  writer: {instructions: "Write.", backend: remote, tools: [calc]}
inputs:
  q: {type: string, default: "hi"}
workflow:
  kind: steps
  steps:
    - {id: a, tool: calculator, args: {expression: "1+1"}}
"""

WF = "workflow: {kind: steps, steps: [{id: a, tool: calculator, args: {expression: '1'}}]}\n"
CALC = "tools: {calc: {builtin: calculator}}\n"
STEP = CALC + WF  # valid on its own: each case adds one defect


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, Path], Path]  # (folder, outside) -> the workflow file
    expect: str  # in the message (lower case)
    validate_ok: bool = False  # only running the tool code finds it

    @property
    def in_process(self) -> bool:
        """Checked through ``main()`` in this process (cheap), not as a subprocess."""
        return self.name in IN_PROCESS


def text(body: str, name: str = "wf.yaml") -> Callable[[Path, Path], Path]:
    def make(folder: Path, _outside: Path) -> Path:
        path = folder / name
        path.write_text(textwrap.dedent(body))
        return path

    return make


def raw(data: bytes) -> Callable[[Path, Path], Path]:
    def make(folder: Path, _outside: Path) -> Path:
        path = folder / "wf.yaml"
        path.write_bytes(data)
        return path

    return make


def with_files(main: str, **files: str | bytes) -> Callable[[Path, Path], Path]:
    """``main`` plus other files in the folder (``sub__x_yaml`` -> ``sub/x.yaml``)."""

    def make(folder: Path, _outside: Path) -> Path:
        for key, content in files.items():
            target = folder / key.replace("__", "/").replace("_yaml", ".yaml").replace("_py", ".py")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content))
        path = folder / "wf.yaml"
        path.write_text(textwrap.dedent(main))
        return path

    return make


def linked(main: str, links: dict[str, str]) -> Callable[[Path, Path], Path]:
    """``main`` plus symlinks (name -> target; ``OUT/`` is the outside folder)."""

    def make(folder: Path, outside: Path) -> Path:
        for name, target in links.items():
            resolved = str(outside) + target[3:] if target.startswith("OUT") else target
            (folder / name).symlink_to(resolved)
        path = folder / "wf.yaml"
        path.write_text(textwrap.dedent(main))
        return path

    return make


def fifo_workflow(folder: Path, _outside: Path) -> Path:
    path = folder / "wf.yaml"
    os.mkfifo(path)
    return path


def fifo_include(folder: Path, _outside: Path) -> Path:
    os.mkfifo(folder / "inc.yaml")
    path = folder / "wf.yaml"
    path.write_text("include: [inc.yaml]\n" + STEP)
    return path


def fifo_module(folder: Path, _outside: Path) -> Path:
    os.mkfifo(folder / "mytools.py")
    path = folder / "wf.yaml"
    path.write_text(
        "tools: {t: {function: 'mytools:f'}}\nworkflow: {kind: steps, steps: [{id: a, tool: t}]}\n"
    )
    return path


def folder_as_workflow(folder: Path, _outside: Path) -> Path:
    path = folder / "wf.yaml"
    path.mkdir()
    return path


def device_workflow(folder: Path, _outside: Path) -> Path:
    path = folder / "wf.yaml"
    path.symlink_to("/dev/zero")
    return path


def laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + STEP


def merge_laughs() -> str:
    lines = ["m0: &m0 {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1}"]
    for i in range(1, 9):
        refs = ", ".join(f"x{j}: *m{i - 1}" for j in range(9))
        lines.append(f"m{i}: &m{i} {{{refs}}}")
    return "\n".join(lines) + "\n" + STEP


def block_nesting(depth: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


def function_module(source: str, target: str = "mytools:f") -> Callable[[Path, Path], Path]:
    return with_files(
        f"""
        tools: {{t: {{function: "{target}"}}}}
        workflow: {{kind: steps, steps: [{{id: a, tool: t}}]}}
        """,
        mytools_py=source,
    )


INCLUDE_OUTSIDE = "include: [OUTSIDE]\n" + STEP

CASES: list[Case] = [
    # -- bombs, sizes and nesting
    Case("billion_laughs", text(laughs()), "expands to more than"),
    Case("merge_key_laughs", text(merge_laughs()), "expands to more than"),
    Case("alias_inside_its_anchor", text("a: &a [*a]\n" + STEP), "nesting deeper"),
    Case("deep_flow_nesting", text("a: " + "[" * 5000 + "]" * 5000 + "\n" + STEP), "nesting"),
    Case("deep_block_nesting", text(block_nesting(200) + STEP), "nesting deeper"),
    Case("too_many_values", text("a:\n" + "  - 1\n" * 120_000 + STEP), "more than 100,000"),
    Case("huge_file", text("description: '" + "x" * 1_500_000 + "'\n" + STEP), "at most"),
    Case("huge_key", text("? " + "k" * 200_000 + "\n: 1\n" + STEP), "unknown key"),
    # -- not text
    Case("binary_elf", raw(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4), "binary"),
    Case("random_bytes", raw(bytes((i * 37 + 11) % 256 for i in range(4096))), "binary"),
    Case("latin1_text", raw("description: café\n".encode("latin-1") + STEP.encode()), "utf-8"),
    Case("utf16_with_bom", raw(("description: x\n" + STEP).encode("utf-16")), "utf-16"),
    Case("bom_then_bad_kind", raw(b"\xef\xbb\xbfworkflow: {kind: nope}\n"), "kind"),
    Case("control_character", raw(b"description: a\x01b\n" + STEP.encode()), "not allowed"),
    Case("lone_surrogate_escape", text('description: "\\udc80"\n' + STEP), "surrogate"),
    # -- not a regular file
    Case("fifo_as_workflow", fifo_workflow, "not a regular file"),
    Case("folder_as_workflow", folder_as_workflow, "is a folder"),
    Case("device_as_workflow", device_workflow, "not a regular file"),
    Case("missing_workflow", lambda folder, _o: folder / "nope.yaml", "cannot read"),
    # -- not a workflow
    Case("empty_file", text(""), "no 'workflow' section"),
    Case("only_comments", text("# nothing here\n"), "no 'workflow' section"),
    Case("top_level_list", text("- a\n- b\n"), "must be a mapping"),
    Case("top_level_scalar", text("just words\n"), "must be a mapping"),
    Case("two_documents", text(STEP + "---\n" + STEP), "single document"),
    Case("unclosed_quote", text('description: "never closed\n' + STEP), "invalid yaml"),
    Case("tab_indentation", text("workflow:\n\tkind: steps\n"), "invalid yaml"),
    Case("duplicate_keys", text(STEP + STEP), "appears twice"),
    Case("non_text_key", text("? [a, b]\n: 1\n" + STEP), "keys must be plain text"),
    # -- tags
    Case("python_object_tag", text("a: !!python/object/apply:os.system [echo]\n" + STEP), "tag"),
    Case("python_name_tag", text("description: !!python/name:os.system\n" + STEP), "tag"),
    Case("custom_tag", text("description: !vault secret\n" + STEP), "unsupported yaml tag"),
    Case("binary_tag", text("description: !!binary aGVsbG8=\n" + STEP), "unsupported yaml tag"),
    Case("bad_int_tag", text("description: !!int abc\n" + STEP), "does not match its tag"),
    Case("set_tag_on_mapping", text("tools: !!set {a: null}\n" + WF), "unsupported yaml tag"),
    # -- includes
    Case("include_etc_passwd", text("include: [/etc/passwd]\n" + STEP), "absolute path"),
    Case(
        "include_outside",
        text(INCLUDE_OUTSIDE.replace("OUTSIDE", "../outside/secret.yaml")),
        "outside",
    ),
    Case("include_home", text("include: ['~/.bashrc']\n" + STEP), "absolute path"),
    Case(
        "include_symlink_out",
        linked("include: [inc.yaml]\n" + STEP, {"inc.yaml": "OUT/secret.yaml"}),
        "outside",
    ),
    Case(
        "include_symlink_passwd",
        linked("include: [inc.yaml]\n" + STEP, {"inc.yaml": "/etc/passwd"}),
        "outside",
    ),
    Case(
        "include_folder_symlink_out",
        linked("include: [sub/secret.yaml]\n" + STEP, {"sub": "OUT"}),
        "outside",
    ),
    Case("include_itself", text("include: [wf.yaml]\n" + STEP), "include cycle"),
    Case(
        "include_loop",
        with_files(
            "include: [a.yaml]\n" + STEP,
            a_yaml="include: [b.yaml]\n",
            b_yaml="include: [a.yaml]\n",
        ),
        "include cycle",
    ),
    Case(
        "include_loop_through_symlink",
        linked("include: [again.yaml]\n" + STEP, {"again.yaml": "wf.yaml"}),
        "include cycle",
    ),
    Case(
        "include_symlink_loop",
        linked("include: [x.yaml]\n" + STEP, {"x.yaml": "y.yaml", "y.yaml": "x.yaml"}),
        "cannot be resolved",
    ),
    Case("include_fifo", fifo_include, "not a regular file"),
    Case(
        "include_binary",
        with_files("include: [inc.yaml]\n" + STEP, inc_yaml=b"\x00\x01" + INSIDE.encode()),
        "binary",
    ),
    Case(
        "include_not_a_mapping",
        with_files("include: [inc.yaml]\n" + STEP, inc_yaml=f"root:{INSIDE}:0:0\n"),
        "must be a mapping",
    ),
    Case(
        "include_invalid_yaml",
        with_files("include: [inc.yaml]\n" + STEP, inc_yaml=f'"{INSIDE}\n  : : :'),
        "invalid yaml",
    ),
    Case(
        "include_defines_workflow",
        with_files("include: [inc.yaml]\n" + STEP, inc_yaml=STEP),
        "may only define",
    ),
    Case("include_missing", text("include: [nope.yaml]\n" + STEP), "does not exist"),
    Case("include_not_a_list", text("include: {a: 1}\n" + STEP), "include"),
    Case("include_number", text("include: [42]\n" + STEP), "file names"),
    Case("include_nul_name", text('include: ["a\\0b.yaml"]\n' + STEP), "nul"),
    # -- the files tool's root
    Case(
        "files_root_filesystem_root",
        text("tools: {fs: {builtin: files, root: /}}\n" + WF),
        "outside",
    ),
    Case("files_root_parent", text("tools: {fs: {builtin: files, root: ..}}\n" + WF), "outside"),
    Case("files_root_etc", text("tools: {fs: {builtin: files, root: /etc}}\n" + WF), "outside"),
    Case(
        "files_root_symlink_out",
        linked("tools: {fs: {builtin: files, root: docs}}\n" + WF, {"docs": "OUT"}),
        "outside",
    ),
    Case(
        "files_root_missing",
        text("tools: {fs: {builtin: files, root: nope}}\n" + WF),
        "does not exist",
    ),
    # -- function tools
    Case("module_syntax_error", function_module("def f(:\n    pass\n"), "does not compile"),
    Case("module_nul_bytes", function_module("def f():\n    return 1\n\x00\n"), "compile"),
    Case(
        "module_missing",
        text("tools: {t: {function: 'no_such_mod_q1:f'}}\n" + WF),
        "cannot import",
    ),
    Case("module_fifo", fifo_module, "not a regular file"),
    Case(
        "module_raises_at_import",
        function_module("raise RuntimeError('boom at import')\n"),
        "raised runtimeerror",
        validate_ok=True,
    ),
    Case(
        "module_imports_missing_dependency",
        function_module("import no_such_dependency_q2\n\ndef f():\n    return 1\n"),
        "cannot import",
        validate_ok=True,
    ),
    Case(
        "function_missing",
        function_module("def g():\n    return 1\n"),
        "has no 'f'",
        validate_ok=True,
    ),
    Case("function_not_callable", function_module("f = 42\n"), "not a function", validate_ok=True),
    Case(
        "function_bad_target",
        text("tools: {t: {function: 'os.system'}}\n" + WF),
        "string should match",
    ),
    # -- wrong types and values, section by section
    Case("backends_is_a_list", text("backends: [a, b]\n" + STEP), "backends"),
    Case("backend_is_text", text("backends: {remote: fast}\n" + STEP), "backends.remote"),
    Case("backend_unknown_kind", text("backends: {remote: {kind: magic}}\n" + STEP), "kind"),
    Case(
        "base_url_file",
        text("backends: {r: {kind: openai, model: m, base_url: 'file:///etc/passwd'}}\n" + STEP),
        "http",
    ),
    Case(
        "base_url_no_host",
        text("backends: {r: {kind: openai, model: m, base_url: 'http://'}}\n" + STEP),
        "http",
    ),
    Case(
        "timeout_negative",
        text("backends: {r: {kind: openai, model: m, timeout_s: -1}}\n" + STEP),
        "greater than 0",
    ),
    Case("model_is_a_number", text("backends: {r: {kind: openai, model: 5}}\n" + STEP), "string"),
    Case(
        "env_ref_unset",
        text("backends: {r: {kind: openai, model: '${PLAIT_HOSTILE_UNSET_Q3}'}}\n" + STEP),
        "not set",
    ),
    Case("tools_is_a_list", text("tools: [calculator]\n" + WF), "tools"),
    Case("tool_unknown_builtin", text("tools: {t: {builtin: shell}}\n" + WF), "builtin"),
    Case(
        "tool_two_kinds",
        text("tools: {t: {builtin: calculator, function: 'a:b'}}\n" + WF),
        "unknown key",
    ),
    Case(
        "agent_without_instructions",
        text("agents: {w: {backend: default}}\n" + STEP),
        "instructions",
    ),
    Case("agent_tools_text", text("agents: {w: {instructions: x, tools: calc}}\n" + STEP), "list"),
    Case(
        "agent_unknown_backend",
        text("agents: {w: {instructions: x, backend: nope}}\n" + STEP),
        "unknown backend",
    ),
    Case("agent_typo_key", text("agents: {w: {instructons: x}}\n" + STEP), "did you mean"),
    Case(
        "input_default_wrong_type",
        text("inputs: {n: {type: integer, default: abc}}\n" + STEP),
        "must be an integer",
    ),
    Case(
        "input_bool_default_text",
        text("inputs: {b: {type: boolean, default: 'maybe'}}\n" + STEP),
        "must be a boolean",
    ),
    Case("input_unknown_type", text("inputs: {n: {type: bytes}}\n" + STEP), "type"),
    Case("memory_is_a_number", text("memory: 5\n" + STEP), "memory"),
    Case("version_two", text("version: 2\n" + STEP), "version"),
    Case("unknown_section", text("secrets: {a: 1}\n" + STEP), "unknown key"),
    Case("workflow_without_kind", text("workflow: {steps: []}\n"), "kind"),
    Case("workflow_no_steps", text("workflow: {kind: steps, steps: []}\n"), "at least 1"),
    Case(
        "step_agent_and_tool",
        text(GOOD.replace("tool: calculator,", "tool: calculator, agent: writer,")),
        "exactly one",
    ),
    Case(
        "step_cycle",
        text(
            CALC + "workflow: {kind: steps, steps: [{id: a, tool: calculator, depends_on: [b]},"
            " {id: b, tool: calculator, depends_on: [a]}]}\n"
        ),
        "cycle",
    ),
    Case(
        "step_bad_id",
        text("workflow: {kind: steps, steps: [{id: 'a b', tool: calculator}]}\n"),
        "string should match",
    ),
    Case(
        "router_cycle",
        text(
            "backends:\n  a: {kind: router, policy: fallback, chain: [b]}\n"
            "  b: {kind: router, policy: fallback, chain: [a]}\n" + STEP
        ),
        "cycle",
    ),
    Case("infinite_number", text("backends: {l: {kind: local, n_ctx: .inf}}\n" + STEP), "n_ctx"),
]


# Kinds that cannot hang or crash the interpreter: checked in this process, so
# that the subprocess part of the corpus stays quick (each process imports plait).
IN_PROCESS = {
    "random_bytes",
    "lone_surrogate_escape",
    "only_comments",
    "include_not_a_list",
    "include_number",
    "files_root_etc",
    "files_root_missing",
    "module_nul_bytes",
    "module_imports_missing_dependency",
    "function_not_callable",
    "function_bad_target",
    "backends_is_a_list",
    "backend_is_text",
    "base_url_no_host",
    "timeout_negative",
    "model_is_a_number",
    "tool_unknown_builtin",
    "tool_two_kinds",
    "agent_without_instructions",
    "agent_tools_text",
    "agent_unknown_backend",
    "input_bool_default_text",
    "input_unknown_type",
    "memory_is_a_number",
    "version_two",
    "workflow_no_steps",
    "step_agent_and_tool",
    "step_bad_id",
    "router_cycle",
    "infinite_number",
}


@dataclass
class Outcome:
    command: str
    returncode: int | None
    output: str


def _run(command: str, path: Path, cwd: Path, env: dict[str, str]) -> Outcome:
    argv = [sys.executable, "-m", "plait", command, str(path)]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        output = (
            (e.stdout or b"").decode(errors="replace")
            if isinstance(e.stdout, bytes)
            else (e.stdout or "")
        )
        return Outcome(command, None, output + f"\n[timed out after {TIMEOUT_S} s]")
    return Outcome(command, done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome]]:
    """Every case through ``validate`` and ``run``, in parallel processes."""
    base = tmp_path_factory.mktemp("hostile")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(f"backends:\n  {MARKER}: {{kind: {MARKER}}}\n")
    env = {**os.environ, "PLAIT_STATE_DIR": str(base / "state")}
    env.pop("PLAIT_DEBUG", None)
    jobs = []
    for case in CASES:
        if case.in_process:
            continue
        folder = base / case.name
        folder.mkdir()
        path = case.make(folder, outside)
        jobs += [(case.name, "validate", path), (case.name, "run", path)]
    results: dict[str, list[Outcome]] = {name: [] for name, _, _ in jobs}
    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        futures = [
            (name, pool.submit(_run, command, path, base, env)) for name, command, path in jobs
        ]
        for name, future in futures:
            results[name].append(future.result())
    return results


def test_the_corpus_is_large_enough():
    assert len({case.name for case in CASES}) == len(CASES)
    assert IN_PROCESS <= {case.name for case in CASES}
    assert len([case for case in CASES if not case.in_process]) >= 54


@pytest.mark.parametrize("case", [c for c in CASES if not c.in_process], ids=lambda c: c.name)
def test_hostile_file(case: Case, outcomes: dict[str, list[Outcome]]):
    """One file through ``plait validate`` and ``plait run``, each its own process."""
    assert len(outcomes[case.name]) == 2
    for outcome in outcomes[case.name]:
        _check(case, outcome)


@pytest.mark.parametrize("case", [c for c in CASES if c.in_process], ids=lambda c: c.name)
def test_hostile_file_in_process(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    from plait.cli import main

    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PLAIT_DEBUG", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(f"backends:\n  {MARKER}: {{kind: {MARKER}}}\n")
    folder = tmp_path / case.name
    folder.mkdir()
    path = case.make(folder, outside)
    for command in ("validate", "run"):
        code = main([command, str(path)])
        captured = capsys.readouterr()
        _check(case, Outcome(command, code, captured.out + captured.err))


def _check(case: Case, outcome: Outcome) -> None:
    shown = f"plait {outcome.command} -> {outcome.returncode}:\n{outcome.output}"
    assert outcome.returncode is not None, shown  # no hang
    assert "Traceback" not in outcome.output, shown
    assert MARKER not in outcome.output, shown
    assert INSIDE not in outcome.output, shown
    assert not PASSWD_LINE.search(outcome.output), shown
    assert len(outcome.output) < 5_000, shown  # one short paragraph, whatever the file
    if outcome.command == "validate" and case.validate_ok:
        assert outcome.returncode == 0, shown
        return
    assert outcome.returncode == 2, shown
    assert outcome.output.startswith("plait: error: "), shown
    assert re.search(r":\d+:\d+: ", outcome.output), shown  # positioned
    assert case.expect in outcome.output.lower(), shown
