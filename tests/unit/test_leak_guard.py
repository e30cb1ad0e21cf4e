"""The leak guard of tests/conftest.py sees a thread, a child process and a task left behind, by name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from tests import conftest


def test_a_thread_still_running_is_named_and_one_that_ends_in_the_grace_period_is_not() -> None:
    before = conftest._snapshot()
    stop = threading.Event()
    stuck = threading.Thread(target=stop.wait, name="stuck-one", daemon=True)
    stuck.start()
    quick = threading.Thread(target=stop.wait, args=(0.2,), name="quick-one")
    quick.start()
    try:
        leaks = conftest._leaks(before)
        assert len(leaks) == 1 and "'stuck-one'" in leaks[0] and "wait" in leaks[0], leaks
    finally:
        stop.set()
        stuck.join(5)
        quick.join(5)
    assert conftest._leaks(before) == []


def test_a_child_process_still_running_is_named() -> None:
    before = conftest._snapshot()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in conftest._child_processes()
        leaks = conftest._leaks(before)
        assert len(leaks) == 1 and leaks[0].startswith(f"child process {child.pid} (python"), leaks
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert conftest._leaks(before) == []


def test_a_task_asyncio_run_had_to_cancel_is_recorded_and_a_finished_one_is_not() -> None:
    recorded = list(conftest._leaked_tasks)

    async def tidy() -> None:
        task = asyncio.create_task(asyncio.sleep(0), name="finished")
        await task

    async def sloppy() -> None:
        asyncio.create_task(asyncio.Event().wait(), name="forgotten")
        await asyncio.sleep(0)

    try:
        asyncio.run(tidy())
        assert conftest._leaked_tasks == recorded
        asyncio.run(sloppy())
        assert len(conftest._leaked_tasks) == len(recorded) + 1 and "forgotten" in conftest._leaked_tasks[-1]
    finally:
        conftest._leaked_tasks[:] = recorded  # this test's own deliberate leak is not the test's failure
