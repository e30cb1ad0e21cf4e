"""Test-suite wide configuration.

* Each test folder sets its own marker (tests/unit -> ``unit`` ...), so ``pytest -m integration`` picks a tier.
* ``stress`` and ``benchmark`` are excluded by default (see ``addopts`` in setup.cfg).
* Hypothesis: the ``ci`` profile (selected when ``CI`` is set) has no deadline, since shared CI machines
  stall unpredictably; the ``dev`` profile keeps example counts small for a fast local loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile("dev", deadline=None, max_examples=100)
    settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
except ImportError:  # pragma: no cover - hypothesis is part of the [test] extra
    pass

_TIERS = {"unit", "property", "integration", "smoke", "contract", "stress", "benchmark"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            rel = Path(str(item.fspath)).relative_to(root)
        except ValueError:
            continue
        if rel.parts and rel.parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, rel.parts[0]))


# -- leak guard ------------------------------------------------------------------------------------------
#
# A test must leave no thread, asyncio task or child process behind (developers' guide). After each test's
# teardown the guard compares with what existed before its setup: Python threads (threading.enumerate()),
# direct child processes (/proc/*/stat whose ppid is this process; zombies do not count, they run
# nothing) and asyncio tasks that were still pending when asyncio.run() (or a Runner) closed its loop
# and cancelled them. Threads and children get a bounded grace period to finish; then the test fails at
# teardown, naming what leaked. A test that uses a module/class-scoped fixture of ours is checked when that
# fixture is torn down (after the module's last test), since the fixture's threads rightly outlive the
# tests in between.

_GRACE_SECONDS = 2.0

#: Threads that libraries start once per process, on first use, and keep by design (not a test's leak):
#: pyzmq's garbage collector thread, which frees zero-copy message buffers.
_PROCESS_WIDE_THREADS = frozenset({"zmq.utils.garbage.GarbageCollectorThread"})

#: Tests that leak through code owned by another part of the tree (node, admin, membership, foundation):
#: nodeid -> what leaks. The guard reports them without failing. Remove an entry once its leak is fixed.
LEAK_ALLOWED: dict[str, str] = {}

_leaked_tasks: list[str] = []


class _LeakCheckingLoop(asyncio.SelectorEventLoop):
    """Records the tasks a Runner (asyncio.run) had to cancel at close: they outlived the test's code."""

    _runs = 0

    def run_until_complete(self, future: Any) -> Any:
        self._runs += 1
        if self._runs > 1:  # the first call runs the test's coroutine; later ones are the Runner's cleanup
            pending = [t for t in asyncio.all_tasks(self) if t is not future and not t.done()]
            # The Runner cancels every remaining task, then waits for them: all are cancelling then.
            if pending and all(t.cancelling() for t in pending):
                _leaked_tasks.extend(f"task {t.get_name()} ({t.get_coro()!r})"[:200] for t in pending)
        return super().run_until_complete(future)


class _LeakCheckingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _LeakCheckingLoop()


asyncio.set_event_loop_policy(_LeakCheckingPolicy())


def _child_processes() -> dict[int, str]:
    """Running direct children of this process: pid -> command name (from /proc, no psutil)."""
    me = os.getpid()
    found: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:  # not Linux: the thread and task checks still run
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:  # exited meanwhile
            continue
        name, _, rest = stat.rpartition(")")  # the command name may contain spaces and parentheses
        fields = rest.split()
        if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) == me and fields[0] != "Z":
            found[int(entry)] = name.partition("(")[2]
    return found


@dataclasses.dataclass
class _Snapshot:
    threads: set[threading.Thread]
    children: set[int]


def _snapshot() -> _Snapshot:
    return _Snapshot(set(threading.enumerate()), set(_child_processes()))


def _leaks(before: _Snapshot) -> list[str]:
    """What exists now and did not before, after waiting up to the grace period for it to end."""
    deadline = time.monotonic() + _GRACE_SECONDS
    while True:
        threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()
                   and f"{type(t).__module__}.{type(t).__qualname__}" not in _PROCESS_WIDE_THREADS]
        children = {pid: name for pid, name in _child_processes().items() if pid not in before.children}
        if (not threads and not children) or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return [f"thread {t.name!r} ({_thread_origin(t)})" for t in threads] + [
        f"child process {pid} ({name})" for pid, name in sorted(children.items())
    ]


def _thread_origin(thread: threading.Thread) -> str:
    """Where a thread comes from: its target, or its class when run() is overridden."""
    target = getattr(thread, "_target", None)
    if target is not None:
        return f"target {getattr(target, '__qualname__', target)!s} in {getattr(target, '__module__', '?')}"
    cls = type(thread)
    return f"class {cls.__module__}.{cls.__qualname__}"


def _uses_wider_fixture(item: pytest.Item) -> bool:
    """True when the test uses one of our own module/class/package-scoped fixtures."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        if any(d.scope in ("module", "class", "package") and getattr(d, "baseid", "") for d in defs):
            return True
    return False


_before_key = pytest.StashKey[_Snapshot]()
#: module nodeid -> (snapshot before its first wider-scoped test, that test's nodeid)
_deferred: dict[str, tuple[_Snapshot, str]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    snap = _snapshot()
    item.stash[_before_key] = snap
    if _uses_wider_fixture(item) and item.parent is not None:
        _deferred.setdefault(item.parent.nodeid, (snap, item.nodeid))
    _leaked_tasks.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    result = yield
    before = item.stash.get(_before_key, None)
    if before is None:
        return result
    tasks, _leaked_tasks[:] = list(_leaked_tasks), []
    module = item.parent.nodeid if item.parent is not None else ""
    owner = item.nodeid
    if module in _deferred:
        if nextitem is not None and nextitem.parent is item.parent:
            leaks = tasks  # the module's fixtures are still up: threads/children are checked at its end
        else:
            before, owner = _deferred.pop(module)
            leaks = tasks + _leaks(before)
    else:
        leaks = tasks + _leaks(before)
    if leaks:
        message = f"{owner} left behind: " + "; ".join(leaks)
        if owner in LEAK_ALLOWED or item.nodeid in LEAK_ALLOWED:
            warnings.warn(f"known leak ({LEAK_ALLOWED.get(owner) or LEAK_ALLOWED[item.nodeid]}): {message}",
                          stacklevel=1)
        else:
            pytest.fail(message, pytrace=False)
    return result
