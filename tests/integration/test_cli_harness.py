"""Shared helpers for the CLI tests (no tests here): in-process nodes run by ``run_node``, and
``foundation-node start`` child processes.

In-process nodes run :func:`foundation_cli.runner.run_node` on their own loop thread, exactly as the ``start``
command does (minus signal handlers), so CliRunner tests talk to real nodes over real sockets.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from fabric import NodeConfig
from fabric.settings import StartSettings
from foundation_cli.runner import RunningNode, run_node
from tests.support import REPO, Child


class LocalNode:
    """A node run by ``run_node`` on a background loop thread (what ``start`` runs), stopped by :meth:`stop`."""

    def __init__(
        self,
        name: str,
        *,
        seeds: Sequence[str] = (),
        http: bool = False,
        clock: Callable[[], float] = time.time,
        config: NodeConfig | None = None,
    ) -> None:
        self.settings = StartSettings(
            node=config or NodeConfig.local(name=name), seeds=tuple(seeds), http_port=0 if http else None
        )
        self.clock = clock
        self.running: RunningNode | None = None
        self.reason: str | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"test-node-{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError(f"node {name} did not start")
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def body() -> None:
            self._stop = asyncio.Event()

            def ready(running: RunningNode) -> None:
                self.running = running
                self._ready.set()

            try:
                self.reason = await run_node(self.settings, ready=ready, stop=self._stop, install_signals=False, clock=self.clock)
            except BaseException as exc:
                self.error = exc
                self._ready.set()

        try:
            loop.run_until_complete(body())
        finally:
            loop.close()

    @property
    def seed(self) -> str:
        assert self.running is not None
        return self.running.node.seed

    @property
    def http(self) -> str:
        assert self.running is not None and self.running.http_url
        return self.running.http_url

    @property
    def id(self) -> str:
        assert self.running is not None
        return self.running.node.id

    def stopped(self) -> bool:
        return not self._thread.is_alive()

    def wait_stopped(self, timeout: float = 15.0) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@contextmanager
def local_nodes(*names: str, http: bool = False) -> Iterator[list[LocalNode]]:
    """Start ``names`` as a static full mesh (each seeds every earlier one); stop them all after."""
    nodes: list[LocalNode] = []
    try:
        for name in names:
            nodes.append(LocalNode(name, seeds=[n.seed for n in nodes], http=http))
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` (bounded) until true; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def cli_command() -> list[str]:
    """How to run the installed ``foundation-node`` (or the module when not installed)."""
    exe = REPO / ".venv" / "bin" / "foundation-node"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "foundation_cli.main"]


class NodeProcess:
    """``foundation-node start ...`` as a child process; parses its ready line."""

    def __init__(self, *args: str) -> None:
        self.child = Child([*cli_command(), "start", *args])
        line = self.child.expect("ready ", timeout=30)
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        self.name, self.id, self.seed, self.http = fields["name"], fields["id"], fields["seed"], fields["http"]
        self.admin = fields.get("admin", "-")

    @property
    def pid(self) -> int:
        return self.child.pid

    def stop(self) -> int | None:
        return self.child.stop()


def run_cli(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``foundation-node ARGS`` as a process; returns (exit code, stdout, stderr)."""
    import subprocess

    from tests.support import python_env

    out = subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=timeout, env=env or python_env())
    return out.returncode, out.stdout, out.stderr
