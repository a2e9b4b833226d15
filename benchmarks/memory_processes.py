"""What keeping an embedded memory store current across processes costs a query.

Every ``ChromaStore`` operation on an embedded folder first reads the folder's
change counter under a shared ``fcntl`` lock; a write by another process makes
the next operation reopen the client. This measures, on one store of ``--records``
records with 384-dimensional vectors:

- ``query_ms_raw``: a nearest-5 query straight on the chroma collection;
- ``query_ms_store``: the same query through ``ChromaStore.query`` (the counter
  check, the thread hop, and turning rows into records);
- ``check_us``: the counter check alone (lock, read, unlock);
- ``check_share``: ``check_us`` as a fraction of ``query_ms_store``;
- ``reopen_ms``: the first query after another process wrote (reopen included).

    python benchmarks/memory_processes.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from plait.memory import ChromaStore, MemoryRecord
from plait.memory._store import _local

NS = "bench"
DIM = 384


def _vectors(n: int, rng: random.Random) -> list[list[float]]:
    return [[rng.gauss(0.0, 1.0) for _ in range(DIM)] for _ in range(n)]


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def main(records: int, queries: int) -> dict[str, float | int]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "memory"
        store = ChromaStore(folder)
        batch = [MemoryRecord(id=f"r{i}", text=f"record {i}") for i in range(records)]
        for start in range(0, records, 500):
            part = batch[start : start + 500]
            await store.add(NS, part, _vectors(len(part), rng))
        probes = _vectors(queries, rng)
        await store.query(NS, probes[0], n=5)  # warm: client open, index loaded
        local = _local(folder)
        collection = local.collections[NS]

        raw, checked, check = [], [], []
        for probe in probes:
            t = time.perf_counter()
            collection.query(query_embeddings=[probe], n_results=5)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            await store.query(NS, probe, n=5)
            checked.append(time.perf_counter() - t)
            fd = local.counter()
            t = time.perf_counter()
            fcntl.flock(fd, fcntl.LOCK_SH)
            local.read_count()
            fcntl.flock(fd, fcntl.LOCK_UN)
            check.append(time.perf_counter() - t)

        # Another process writes one record; the next query here reopens.
        other = textwrap.dedent(
            f"""
            import asyncio
            from plait.memory import ChromaStore, MemoryRecord
            asyncio.run(ChromaStore({str(folder)!r}).add(
                {NS!r}, [MemoryRecord(id="other", text="x")], [[0.5] * {DIM}]))
            """
        )
        script = Path(tmp) / "other.py"
        script.write_text(other)
        subprocess.run([sys.executable, str(script)], check=True)
        t = time.perf_counter()
        hits = await store.query(NS, [0.5] * DIM, n=1)
        reopen = time.perf_counter() - t
        assert hits[0][0].id == "other", hits

    check_us = statistics.median(check) * 1e6
    store_ms = _median_ms(checked)
    return {
        "records": records,
        "queries": queries,
        "query_ms_raw": round(_median_ms(raw), 3),
        "query_ms_store": round(store_ms, 3),
        "check_us": round(check_us, 2),
        "check_share": round(check_us / 1000 / store_ms, 4),
        "reopen_ms": round(reopen * 1000, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.records, args.queries))))
