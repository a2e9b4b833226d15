"""Paraphrase retrieval with the default offline embedder, through the real chromadb store.

Data: ``data/memory_retrieval.jsonl``, hand-written for plait: 40 memories each
with a query that paraphrases it with little word overlap, plus 20 distractor
memories on neighbouring topics. Reports ``recall_at_3`` and ``embed_docs_per_s``
for the default embedder, and, side by side, a bag-of-words baseline on the same
store (shows how far plain word overlap gets on this set).

    python benchmarks/memory_retrieval.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from plait.memory import ChromaStore, Embedder, Memory, MemoryRecord, default_embedder

DATA = Path(__file__).parent / "data" / "memory_retrieval.jsonl"
_STOP = set("a an the of to in on for and or is are be by with at from do does we our i it".split())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


class BagOfWords(Embedder):
    """Hashed bag of words: a lexical baseline, no semantics."""

    name = "bag-of-words"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * 512
            for w in _words(text):
                vec[int(hashlib.md5(w.encode()).hexdigest(), 16) % 512] += 1.0
            norm = math.sqrt(sum(x * x for x in vec)) or 1.0
            # chroma rejects all-zero vectors under cosine; a tiny constant keeps it defined.
            out.append([x / norm + 1e-6 for x in vec])
        return out


async def evaluate(embedder: Embedder, rows: list[dict], root: Path) -> dict[str, float]:
    memory = Memory(
        embedder.name.replace("/", "-")[:40].lower().replace(":", "-").strip("-"),
        store=ChromaStore(root),
        embedder=embedder,
    )
    records = [MemoryRecord(id=r["id"], text=r["memory"]) for r in rows]
    texts = [r.text for r in records]
    await embedder.embed_documents(texts[:2])  # load the model outside the timing
    start = time.perf_counter()
    vectors = await embedder.embed_documents(texts)
    embed_s = time.perf_counter() - start
    await memory.store.add(memory.namespace, records, vectors)
    labelled = [r for r in rows if r["query"]]
    hits = 0
    for row in labelled:
        found = await memory.search(row["query"], k=3)
        hits += row["id"] in {m.record.id for m in found}
    return {"recall_at_3": hits / len(labelled), "embed_docs_per_s": len(texts) / embed_s}


async def main() -> dict[str, object]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    labelled = [r for r in rows if r["query"]]
    overlap = sum(
        len(_words(r["query"]) & _words(r["memory"]))
        / len(_words(r["query"]) | _words(r["memory"]))
        for r in labelled
    ) / len(labelled)
    with tempfile.TemporaryDirectory() as tmp:
        default = default_embedder()
        ours = await evaluate(default, rows, Path(tmp))
        baseline = await evaluate(BagOfWords(), rows, Path(tmp))
    return {
        "benchmark": "memory_retrieval",
        "embedder": default.name,
        "memories": len(rows),
        "queries": len(labelled),
        "mean_word_jaccard": round(overlap, 3),
        "recall_at_3": round(ours["recall_at_3"], 3),
        "embed_docs_per_s": round(ours["embed_docs_per_s"], 1),
        "bag_of_words_recall_at_3": round(baseline["recall_at_3"], 3),
        "target_recall_at_3": 0.85,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.parse_args()
    print(json.dumps(asyncio.run(main())))
