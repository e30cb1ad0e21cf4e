"""Helpers shared by the test tiers: required components, short ipc paths, child processes.

Rules encoded here (see DEVELOPERS guide):
* a component that ``.ci/run`` installs must *fail* the test in CI (``CI=true``) when missing, and may skip
  on a developer machine that lacks it;
* ipc:// paths must stay under 107 bytes, so they live in a short directory under /tmp;
* child processes are ended by their own PID only, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str, *, reason: str = "") -> str:
    """Return the path of executable ``name``; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        msg = f"required component {name!r} is not installed {reason}".strip()
        if IN_CI:
            pytest.fail(msg + " (.ci/run installs it)")
        pytest.skip(msg)
    return path


@contextmanager
def short_tmpdir(prefix: str = "ff") -> Iterator[str]:
    """A short directory under /tmp for ipc:// endpoints (paths must stay under 107 bytes)."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_port_range(span: int = 5) -> int:
    """A base port with ``span`` free ports after it (checked by binding; the OS may reuse them later)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + span >= 65535:
            continue
        try:
            socks = []
            for i in range(span):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port range")


def python_env() -> dict[str, str]:
    """Environment for child Python processes: the repository importable, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A child process we started; stopped by its own PID only, every wait bounded."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or python_env(),
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @classmethod
    def python(cls, *args: str) -> Child:
        return cls([sys.executable, *args])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        # A reader thread: select() on a buffered pipe misses lines already read into the buffer.
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def readline(self, timeout: float = 20.0) -> str:
        """Read one stdout line, failing the test if none arrives within ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output from {self.args} within {timeout:.1f}s") from None
        if line is None:
            self._lines.put(None)
            raise EOFError(f"{self.args} exited ({self.proc.wait(5)}); stderr: {self.stderr_tail()}")
        return line.rstrip("\n")

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        """Read lines until one starts with ``prefix``; return it (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{prefix!r} not seen from {self.args}")
            line = self.readline(remaining)
            if line.startswith(prefix):
                return line

    def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # stdin of a killed child: the flush on close hits a broken pipe
                    pass
        return self.proc.returncode


@contextmanager
def children() -> Iterator[list[Child]]:
    """Collect Child processes and stop every one of them (by PID) on exit."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.stop()


async def heartbeat_rounds(nodes: Sequence[Any], rounds: int, timeout: float = 60.0) -> None:
    """Wait (bounded) until each node has received ``rounds`` more heartbeats per neighbour than now.

    The marker for "nothing changed" checks: a fixed sleep proves nothing on a loaded machine (the
    nodes' timers may not have run at all), while heartbeats received prove the nodes' own timers ran.
    Each neighbour sends at most one heartbeat per ``heartbeat_interval``, so ``rounds`` rounds mean at
    least ``rounds - 1`` intervals passed on the senders' clocks, and every periodic check that runs on
    the same timers (failure detection, automatic topology) had its chances.
    """
    def received(node: Any) -> int:
        return int(node.stats()["membership"].get("recv_hb", 0))

    wanted = [received(n) + rounds * max(1, len(n.neighbours())) for n in nodes]
    deadline = time.monotonic() + timeout
    while not all(received(n) >= w for n, w in zip(nodes, wanted, strict=True)):
        assert time.monotonic() < deadline, (
            f"{rounds} heartbeat rounds not seen within {timeout}s: "
            f"{[(received(n), w) for n, w in zip(nodes, wanted, strict=True)]}")
        await asyncio.sleep(0.02)
