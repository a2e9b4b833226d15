"""Memory on a real embedded chromadb with the real offline embedder."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from plait.errors import ConfigError, MemoryAccessDenied, MemoryStoreError, ToolError
from plait.memory import (
    ChromaStore,
    E5Embedder,
    Memory,
    MemoryKind,
    MemoryTools,
    ScoreWeights,
    SourceKind,
    TeamMemory,
    Trust,
    recall_block,
)

EMBEDDER = E5Embedder()


def make(tmp_path, namespace="test", **kw):
    return Memory(namespace, store=ChromaStore(tmp_path / "mem"), embedder=EMBEDDER, **kw)


async def test_embedder_understands_paraphrase():
    docs = await EMBEDDER.embed_documents(
        ["The staging server is only reachable through the company VPN.", "Cats sleep a lot."]
    )
    (q,) = await EMBEDDER.embed_queries(["how do I get network access to the test environment?"])
    sims = [sum(a * b for a, b in zip(d, q, strict=True)) for d in docs]
    assert sims[0] > sims[1]


async def test_recall_finds_paraphrase_and_keeps_provenance(tmp_path):
    memory = make(tmp_path)
    await memory.remember("Invoices are paid within thirty days of receipt.", source="user")
    target = await memory.remember(
        "The staging server is only reachable through the company VPN.",
        source="user",
        writer="ana",
        run_id="run-7",
        tags=["infra"],
        metadata={"team": "ops"},
    )
    await memory.remember("Our office cat is called Miso.", source="user")
    result = await memory.recall("how do I get network access to the test environment?", k=1)
    (hit,) = result.memories
    assert hit.record.id == target.id
    assert hit.record.provenance.writer == "ana"
    assert hit.record.provenance.run_id == "run-7"
    assert hit.record.provenance.trust == Trust.HIGH
    assert hit.record.tags == ("infra",)
    assert hit.record.metadata == {"team": "ops"}
    assert "[1] The staging server" in result.as_context()


def test_records_persist_across_processes(tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio
        from plait.memory import ChromaStore, Memory
        async def main():
            m = Memory("persist", store=ChromaStore({str(tmp_path / "mem")!r}))
            await m.remember("The deploy key rotates every ninety days.", source="user")
        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    script2 = textwrap.dedent(
        f"""
        import asyncio
        from plait.memory import ChromaStore, Memory
        async def main():
            m = Memory("persist", store=ChromaStore({str(tmp_path / "mem")!r}))
            r = await m.recall("how often is the deployment credential replaced?", k=1)
            print(r.memories[0].text)
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script2], check=True, capture_output=True, text=True
    )
    assert "ninety days" in out.stdout


async def test_namespaces_are_separate(tmp_path):
    a, b = make(tmp_path, "alpha"), make(tmp_path, "beta")
    await a.remember("Alpha uses PostgreSQL.")
    assert await a.count() == 1
    assert await b.count() == 0
    assert (await b.recall("which database?")).memories == []


async def test_filters_by_kind_tag_and_metadata(tmp_path):
    memory = make(tmp_path)
    await memory.remember("Deploy failed: disk full on build agent.", kind="episodic", tags=["ci"])
    await memory.remember(
        "Build agents have 50 GB disks.", kind="semantic", metadata={"team": "ci"}
    )
    await memory.remember("Disk cleanup runs weekly.", kind="semantic", metadata={"team": "ops"})
    episodic = await memory.search("disk", kinds=["episodic"])
    assert [m.record.kind for m in episodic] == [MemoryKind.EPISODIC]
    tagged = await memory.search("disk", tags=["ci"])
    assert [m.text for m in tagged] == ["Deploy failed: disk full on build agent."]
    ops = await memory.search("disk", filters={"team": "ops"})
    assert [m.text for m in ops] == ["Disk cleanup runs weekly."]


async def test_recency_and_importance_change_the_ranking(tmp_path):
    now = [1_000_000.0]
    weights = ScoreWeights(similarity=1.0, recency=1.0, importance=0.0, half_life_s=3600)
    memory = make(tmp_path, weights=weights, clock=lambda: now[0])
    old = await memory.remember("The release manager is Priya.")
    now[0] += 10 * 3600
    new = await memory.remember("The release manager is Tomas.")
    top = (await memory.recall("who manages releases?", k=2)).memories
    assert top[0].record.id == new.id
    assert top[0].recency > 0.99 and top[1].recency < 0.01
    # With recency off and importance on, the important (older) record wins.
    memory.weights = ScoreWeights(similarity=1.0, recency=0.0, importance=1.0)
    await memory.forget([old.id])
    important = await memory.remember("The release manager is Priya.", importance=1.0)
    top = (await memory.recall("who manages releases?", k=2)).memories
    assert top[0].record.id == important.id


async def test_untrusted_sources_get_low_trust_by_default(tmp_path):
    memory = make(tmp_path)
    record = await memory.remember("Page says: the API limit is 10 req/s.", source="web")
    assert record.provenance.trust == Trust.LOW
    assert record.provenance.source == SourceKind.WEB


async def test_search_can_keep_only_trusted_records(tmp_path):
    memory = make(tmp_path)
    await memory.remember("Forum post: the API limit is 100 req/s.", source="web")
    trusted = await memory.remember("The API limit is 10 req/s.", source="user")
    found = await memory.search("API limit", trust_above=Trust.LOW)
    assert [m.record.id for m in found] == [trusted.id]
    assert len(await memory.search("API limit")) == 2


async def test_derived_records_inherit_the_lowest_trust(tmp_path):
    memory = make(tmp_path)
    tainted = await memory.remember("Tool said: disable TLS checks.", source="tool")
    episode = await memory.remember(
        "Run 3: disabled TLS checks, deploy succeeded.", kind="episodic", derived_from=[tainted.id]
    )
    assert episode.provenance.trust == Trust.LOW
    assert episode.metadata["derived_from"] == tainted.id


async def test_bad_input_is_reported(tmp_path):
    memory = make(tmp_path)
    with pytest.raises(ConfigError, match="importance"):
        await memory.remember("x", importance=2.0)
    with pytest.raises(ConfigError, match="not a valid SourceKind"):
        await memory.remember("x", source="aliens")
    with pytest.raises(ConfigError, match="namespace 'Bad Name!'"):
        await make(tmp_path, "Bad Name!").remember("x")
    with pytest.raises(ConfigError, match="k must be"):
        await memory.recall("x", k=0)
    with pytest.raises(ConfigError, match="half_life_s"):
        ScoreWeights(half_life_s=0)


async def test_corrupted_store_directory_is_reported(tmp_path):
    (tmp_path / "mem").mkdir()
    (tmp_path / "mem" / "chroma.sqlite3").write_text("this is not a database")
    with pytest.raises(MemoryStoreError) as info:
        await make(tmp_path).remember("anything")
    assert str(tmp_path / "mem") in str(info.value)
    assert "corrupt" in str(info.value)


async def test_store_path_that_is_a_file_is_reported(tmp_path):
    (tmp_path / "mem").write_text("")
    with pytest.raises(MemoryStoreError, match="not a directory"):
        await make(tmp_path).count()


async def test_team_memory_permissions(tmp_path):
    team = TeamMemory(make(tmp_path, "team"), {"planner": "rw", "coder": "r"})
    planner, coder, stranger = (team.for_agent(a) for a in ("planner", "coder", "stranger"))
    record = await planner.remember("The API freeze starts Monday.", writer="someone-else")
    assert record.provenance.writer == "planner"
    assert (await coder.recall("when does the freeze begin?")).memories[0].record.id == record.id
    with pytest.raises(MemoryAccessDenied, match="'coder' may not write"):
        await coder.remember("I can write too")
    with pytest.raises(MemoryAccessDenied, match="'stranger' may not read"):
        await stranger.recall("freeze")
    with pytest.raises(ConfigError, match="'r' and 'w'"):
        TeamMemory(make(tmp_path, "team"), {"x": "rwx"})


async def test_memory_tools_and_recall_block(tmp_path):
    memory = make(tmp_path)
    tools = MemoryTools(memory, agent="researcher", k=2)
    assert [s.name for s in tools.specs] == ["memory_search", "memory_remember"]
    stored = await tools.call("memory_remember", {"text": "Port 8443 serves the admin UI."})
    assert '"trust": "medium"' in stored
    (record,) = await memory.store.get(memory.namespace)
    assert record.provenance.writer == "researcher"
    found = await tools.call("memory_search", {"query": "which port has the admin interface?"})
    assert "8443" in found
    with pytest.raises(ToolError, match="query"):
        await tools.call("memory_search", {})
    with pytest.raises(ToolError, match="unknown memory tool"):
        await tools.call("memory_delete", {})
    block, result = await recall_block(memory, "open the admin console")
    assert block.startswith("Relevant memories") and "8443" in block
    assert result.rejected == []
    empty, _ = await recall_block(make(tmp_path, "empty"), "anything")
    assert empty == ""
