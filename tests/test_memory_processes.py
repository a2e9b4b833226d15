"""Two real processes sharing one embedded memory folder: both keep seeing each other's writes.

chroma's embedded client keeps its vector index in memory; without the change
counter an already-open store misses another process's records, and a filtered
query fails with "Error finding id".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from plait.memory import ChromaStore, MemoryRecord

NS = "shared"
DIM = 8

# The other process: one JSON command per stdin line, one JSON answer per stdout line.
_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from plait.memory import ChromaStore, MemoryRecord

    store = ChromaStore(sys.argv[1])

    def vec(i):
        return [1.0 if j == i else 0.0 for j in range({dim})]

    async def main():
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                if cmd["op"] == "add":
                    records = [
                        MemoryRecord(id=i, text=f"record {{i}}", metadata={{"by": cmd["by"]}})
                        for i in cmd["ids"]
                    ]
                    await store.add({ns!r}, records, [vec(v) for v in cmd["vecs"]])
                    out = "ok"
                elif cmd["op"] == "delete":
                    await store.delete({ns!r}, cmd["ids"])
                    out = "ok"
                elif cmd["op"] == "query":
                    hits = await store.query(
                        {ns!r}, vec(cmd["vec"]), n=cmd["n"], where=cmd.get("where")
                    )
                    out = [r.id for r, _ in hits]
                else:
                    out = sorted(r.id for r in await store.get({ns!r}, where=cmd.get("where")))
            except Exception as e:
                out = {{"error": f"{{type(e).__name__}}: {{e}}"}}
            print(json.dumps(out), flush=True)

    asyncio.run(main())
    """
).format(dim=DIM, ns=NS)


class _Other:
    """The second process, holding its own open store on the same folder."""

    def __init__(self, folder: Path) -> None:
        # Run from a file, so the working directory is not put first on its import path.
        script = folder.parent / "other_process.py"
        script.write_text(_CHILD)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, **cmd: object) -> object:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the other process exited with {self.process.poll()}"
        return json.loads(line)

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=60)


def vec(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(DIM)]


def records(ids: list[str], by: str) -> list[MemoryRecord]:
    return [MemoryRecord(id=i, text=f"record {i}", metadata={"by": by}) for i in ids]


async def ids_near(store: ChromaStore, i: int, n: int, where: dict | None = None) -> list[str]:
    return [r.id for r, _ in await store.query(NS, vec(i), n=n, where=where)]


async def test_two_processes_writing_and_reading_alternately_both_stay_current(tmp_path):
    folder = tmp_path / "memory"
    here = ChromaStore(folder)
    await here.add(NS, records(["p0"], "parent"), [vec(0)])
    assert await ids_near(here, 0, 5) == ["p0"]  # open, index in memory
    other = _Other(folder)
    try:
        assert other(op="add", ids=["c1", "c2"], vecs=[1, 2], by="child") == "ok"
        # The already-open store sees the other process's write, filtered or not.
        assert await ids_near(here, 1, 1) == ["c1"]
        assert sorted(await ids_near(here, 1, 5, {"m_by": "child"})) == ["c1", "c2"]
        assert await ids_near(here, 2, 1, {"m_by": "child"}) == ["c2"]
        # And the other way round, with the other process already open.
        await here.add(NS, records(["p3"], "parent"), [vec(3)])
        assert other(op="query", vec=3, n=1) == ["p3"]
        assert sorted(other(op="query", vec=3, n=5, where={"m_by": "parent"})) == ["p0", "p3"]
        # Deletes travel too.
        assert other(op="delete", ids=["c1"]) == "ok"
        assert await ids_near(here, 1, 5, {"m_by": "child"}) == ["c2"]
        assert sorted(r.id for r in await here.get(NS)) == ["c2", "p0", "p3"]
        # Many alternating rounds: each side writes, the other reads at once.
        for k in range(4, 8):
            assert other(op="add", ids=[f"c{k}"], vecs=[k], by="child") == "ok"
            assert await ids_near(here, k, 1, {"m_by": "child"}) == [f"c{k}"]
            await here.add(NS, records([f"p{k}"], "parent"), [vec(k)])
            assert other(op="query", vec=k, n=1, where={"m_by": "parent"}) == [f"p{k}"]
        expected = sorted(["c2", "p0", "p3", *[f"c{k}" for k in range(4, 8)]])
        expected = sorted([*expected, *[f"p{k}" for k in range(4, 8)]])
        assert other(op="get") == expected
        assert sorted(r.id for r in await here.get(NS)) == expected
        assert await here.count(NS) == len(expected)
    finally:
        other.close()


async def test_two_stores_on_one_folder_in_one_process_share_the_handle(tmp_path):
    folder = tmp_path / "memory"
    first, second = ChromaStore(folder), ChromaStore(folder)
    await first.add(NS, records(["a"], "x"), [vec(0)])
    assert await ids_near(second, 0, 1, {"m_by": "x"}) == ["a"]
    other = _Other(folder)
    try:
        assert other(op="add", ids=["b"], vecs=[1], by="y") == "ok"
    finally:
        other.close()
    assert await ids_near(first, 1, 1, {"m_by": "y"}) == ["b"]
    assert await ids_near(second, 1, 1, {"m_by": "y"}) == ["b"]
    assert (folder / "plait-changes").read_text().strip().isdigit()
