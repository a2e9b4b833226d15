"""``plait new NAME``: a workflow folder that validates, and runs on the embedded model."""

from __future__ import annotations

import sys

import pytest

from plait.cli import main


def test_new_scaffolds_a_folder_that_validates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new", "hello_world"]) == 0
    out = capsys.readouterr().out
    assert "plait run hello_world/workflow.yaml" in out
    folder = tmp_path / "hello_world"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "tools.py", "workflow.yaml"]
    workflow = (folder / "workflow.yaml").read_text()
    assert 'function: "tools:word_count"' in workflow and "tool: word_count" in workflow
    assert "plait run hello_world/workflow.yaml" in (folder / "README.md").read_text()
    assert main(["validate", "hello_world/workflow.yaml"]) == 0
    assert "ok (steps workflow; 1 backends, 1 tools, 1 agents, 1 inputs)" in capsys.readouterr().out
    # The tool is a plain function with a docstring: a schema the model can use.
    compile((folder / "tools.py").read_text(), "tools.py", "exec")


def test_new_takes_an_empty_folder_and_refuses_a_used_one_or_a_bad_name(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["new", "empty"]) == 0
    assert (tmp_path / "empty" / "workflow.yaml").is_file()
    capsys.readouterr()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["new", "used"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == ["notes.txt"]
    (tmp_path / "afile").write_text("")
    assert main(["new", "afile"]) == 2
    assert "already exists and is a file" in capsys.readouterr().err
    for bad in ("../escape", "/abs", "9lives", "has space", "", "a" * 65):
        assert main(["new", bad]) == 2
        assert "is not a workflow name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.local_model
def test_the_scaffold_runs_on_the_embedded_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    assert main(["new", "demo"]) == 0
    # `function: tools:...` imports from the workflow's folder.
    monkeypatch.syspath_prepend(str(tmp_path / "demo"))
    try:
        assert main(["run", "demo/workflow.yaml", "-q", "--input", "text=one two three"]) == 0
    finally:
        sys.modules.pop("tools", None)  # the scaffold's module, not for other tests
    out, err = capsys.readouterr()
    assert out.strip(), err
    assert "done in" in err and "2 tasks" in err
