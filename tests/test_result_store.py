"""The durable SQLite store: group commit, one write per plan, cancelled writers."""

import asyncio
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from plait.errors import ConfigError
from plait.graphs import EagerExecutor, MemoryResultStore, Plan, SQLiteResultStore, Task
from plait.graphs.dag import _store


@pytest.fixture
def batches(monkeypatch):
    """The transactions the SQLite store commits: (writes, statements) of each."""
    sizes: list[tuple[int, int]] = []
    real = _store._execute_commit

    def counted(db, batch):
        sizes.append((len(batch), sum(len(w.statements) for w in batch)))
        real(db, batch)

    monkeypatch.setattr(_store, "_execute_commit", counted)
    return sizes


def _stored(path, task_id):
    """Read a result through another connection: only committed rows are seen."""
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT result FROM results WHERE task_id=?", (task_id,)).fetchone()
    return row[0] if row else None


async def test_writes_that_wait_are_committed_together_and_each_is_on_disk(tmp_path, batches):
    path = tmp_path / "r.sqlite"
    store = SQLiteResultStore(path)

    async def save(i):
        await store.save_result("run", str(i), i)
        # Returned: the row is committed, visible to any other reader.
        assert _stored(path, str(i)) == str(i)

    await asyncio.gather(*(save(i) for i in range(50)))
    # The first writer opens the database (in a worker thread); everyone who
    # queued meanwhile shares its commit.
    assert batches == [(50, 50)]
    _, results = await store.load("run")
    assert results == {str(i): i for i in range(50)}
    store.close()


async def test_a_failing_write_does_not_fail_the_others_of_its_commit(tmp_path, batches):
    store = SQLiteResultStore(tmp_path / "r.sqlite")
    await store.save_result("run", "0", 0)  # opens the database
    outcomes = await asyncio.gather(
        store.save_result("run", "1", 1),
        store._write(("INSERT INTO no_such_table VALUES (1)", ())),
        store.save_result("run", "2", 2),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], sqlite3.OperationalError)
    assert (await store.load("run"))[1] == {"0": 0, "1": 1, "2": 2}
    store.close()


async def test_a_writer_cancelled_before_its_commit_writes_nothing(tmp_path):
    store = SQLiteResultStore(tmp_path / "r.sqlite")
    async with store._lock:  # a commit is under way
        waiting = asyncio.create_task(store.save_result("run", "1", 1))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    await store.save_result("run", "2", 2)
    assert (await store.load("run"))[1] == {"2": 2}
    store.close()


async def test_a_cancelled_committer_does_not_lose_the_writes_it_carried(tmp_path):
    store = SQLiteResultStore(tmp_path / "r.sqlite")
    await store.load("run")  # opens the database (in a worker thread)
    async with store._lock:
        writers = [asyncio.create_task(store.save_result("run", str(i), i)) for i in range(3)]
        await asyncio.sleep(0)
    for _ in range(100):  # until the first writer takes all three into its commit
        if not store._pending:
            break
        await asyncio.sleep(0)
    assert not store._pending
    writers[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await writers[0]
    await asyncio.gather(*writers[1:])  # they return once the shared commit is done
    assert (await store.load("run"))[1] == {"0": 0, "1": 1, "2": 2}
    store.close()


async def test_a_static_plan_is_stored_in_one_write(tmp_path, batches):
    async def runner(task, args):
        return task.id

    store = SQLiteResultStore(tmp_path / "r.sqlite")
    plan = Plan(tasks=tuple(Task(id=str(i), tool="t") for i in range(20)))
    result = await EagerExecutor(runner, store=store).run(plan, run_id="run")
    assert result.ok
    assert batches[0] == (1, 20)  # the plan's twenty tasks, in one write
    tasks, results = await store.load("run")
    assert [t.id for t in tasks] == [str(i) for i in range(20)]
    assert results == {str(i): str(i) for i in range(20)}
    store.close()


async def test_memory_store_keeps_the_first_copy_of_a_task_in_arrival_order():
    store = MemoryResultStore()
    await store.save_tasks("run", [Task(id="b", tool="t"), Task(id="a", tool="t")])
    await store.save_task("run", Task(id="b", tool="other"))
    tasks, _ = await store.load("run")
    assert [(t.id, t.tool) for t in tasks] == [("b", "t"), ("a", "t")]


async def test_an_unopenable_store_fails_every_writer_and_keeps_nothing_queued(tmp_path):
    (tmp_path / "r.sqlite").mkdir()  # a folder where the database file should be
    store = SQLiteResultStore(tmp_path / "r.sqlite")
    outcomes = await asyncio.gather(
        store.save_result("run", "1", 1), store.save_result("run", "2", 2), return_exceptions=True
    )
    assert all(isinstance(o, ConfigError) for o in outcomes), outcomes
    assert not store._pending


CLOSE_DURING_COMMITS = textwrap.dedent(
    """
    import asyncio, sys
    from plait.graphs import SQLiteResultStore

    async def main(folder):
        for i in range(100):
            store = SQLiteResultStore(f"{folder}/s{i}.sqlite")
            await store.save_result("r", "first", 1)
            writers = [
                asyncio.create_task(store.save_result("r", f"t{k}", "x" * 10_000))
                for k in range(20)
            ]
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            for writer in writers:  # their shielded commits go on in a worker thread
                writer.cancel()
            store.close()
            await asyncio.sleep(0.001)

    asyncio.run(main(sys.argv[1]))
    print("closed cleanly")
    """
)


def test_closing_while_cancelled_writers_still_commit_never_crashes(tmp_path):
    # A run cancelled mid-commit closes its store while the commit still runs in
    # a worker thread; closing the connection under it crashed the process.
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_DURING_COMMITS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closed cleanly" in done.stdout


async def test_a_write_after_close_fails_with_a_clear_error(tmp_path):
    store = SQLiteResultStore(tmp_path / "runs.sqlite")
    await store.save_result("r", "a", 1)
    batch = [_store._Write((("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", ("r", "b", "2")),))]
    store.close()
    store._commit(batch)  # a commit that reached its thread only after close
    assert isinstance(batch[0].error, sqlite3.ProgrammingError)
    assert "was closed" in str(batch[0].error)
