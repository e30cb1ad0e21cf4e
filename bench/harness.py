"""Process harness for the benchmarks: child-side control, parent-side workers, statistics.

Theory of operation
-------------------
Every measurement runs in two fresh OS processes started with ``python -m bench.worker ROLE ARGS``
(``ARGS`` is a JSON object), both at once so their interpreter start-ups overlap. The *server* role binds
on ``tcp://127.0.0.1`` ephemeral ports and prints a ``ready`` event carrying its endpoints; the parent
writes them as the first line on the waiting *client*'s stdin.
One side (the *reporter*: the receiver for throughput, the caller for latency) prints a ``result`` event
when its measuring window closes. The parent then writes ``stop`` on both children's stdin; each child
may print a ``final`` event (extra figures it only knows at the end) and exits. A child that does not exit
within a bounded time is killed by its own PID.

The protocol is one JSON object per stdout line (``{"kind": ..., ...}``); stdin carries the client's
endpoints line, then only ``stop``.
No pickle is involved, so the children never import the parent's ``__main__``. Child stderr goes to a
temporary file, so a chatty child can never block on a full pipe; its tail is shown when a child fails.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark child failed, timed out or broke the line protocol; the message says which."""


# -- child side ------------------------------------------------------------------------------------------


class Control:
    """The child's side of the line protocol (one instance per worker process).

    ``stop`` is set by a daemon thread when the parent writes ``stop`` or closes stdin, so role code can
    poll ``stop.is_set()`` cheaply from a hot loop (it reads a flag, no lock, no syscall).
    """

    def __init__(self, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
        self.stop = threading.Event()
        self._out = stdout or sys.stdout
        self._lock = threading.Lock()
        thread = threading.Thread(target=self._watch, args=(stdin or sys.stdin,), name="bench-stop", daemon=True)
        thread.start()

    def _watch(self, stream: IO[str]) -> None:
        for line in stream:
            if line.strip() == "stop":
                break
        self.stop.set()

    def emit(self, kind: str, **fields: Any) -> None:
        """Print one protocol event (thread-safe). ``fields`` must be JSON-serialisable."""
        line = json.dumps({"kind": kind, **fields})
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    async def wait_stop(self, poll: float = 0.02) -> None:
        """Wait (on the running asyncio loop) until the parent says stop; polls every ``poll`` seconds."""
        import asyncio

        while not self.stop.is_set():
            await asyncio.sleep(poll)


class RateWindow:
    """Counts events delivered in a window of ``duration`` seconds that opens ``warmup`` s after ``start``.

    Hot loops call :meth:`observe` with their running count and the current time (as often as they like;
    every call is exact because count and time are taken together). ``done`` turns True once the window
    has closed; :attr:`count` and :attr:`elapsed` then hold the delivered events and the exact span.
    """

    def __init__(self, warmup: float, duration: float) -> None:
        self.warmup = warmup
        self.duration = duration
        self._open_at = float("inf")
        self._c0 = 0
        self._t0 = 0.0
        self._opened = False
        self.done = False
        self.count = 0
        self.elapsed = 0.0

    def start(self, now: float) -> None:
        """Start the warm-up clock (call at the first delivered event)."""
        self._open_at = now + self.warmup

    def observe(self, count: int, now: float) -> bool:
        """Record the running ``count`` at time ``now``; return True when the window has closed."""
        if not self._opened:
            if now >= self._open_at:
                self._opened = True
                self._c0, self._t0 = count, now
            return False
        if now - self._t0 >= self.duration and not self.done:
            self.done = True
            self.count = count - self._c0
            self.elapsed = now - self._t0
        return self.done


class LoopLag:
    """Measures event-loop stalls: how late a short periodic ``asyncio.sleep`` wakes up.

    :meth:`start` on the running loop, :meth:`stop` returns the worst lateness seen in milliseconds,
    including a stall still in progress at the time of the call.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self._sleeping_since = 0.0
        self._task: Any = None

    def start(self) -> None:
        """Start sampling (call on the loop to be measured)."""
        import asyncio

        self._sleeping_since = time.perf_counter()  # a loop that never yields still gets measured
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        import asyncio

        clock = time.perf_counter
        while True:
            self._sleeping_since = clock()
            await asyncio.sleep(self.interval)
            late = clock() - self._sleeping_since - self.interval
            if late > self.worst:
                self.worst = late

    def stop(self) -> float:
        """Stop sampling; the worst lateness in milliseconds."""
        if self._task is not None:
            self._task.cancel()
            in_progress = time.perf_counter() - self._sleeping_since - self.interval
            self.worst = max(self.worst, in_progress)
        return max(0.0, self.worst) * 1000.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


def latency_summary(samples_ns: list[int]) -> dict[str, float]:
    """p50 / p99 / max in microseconds and the sample count, from round-trip samples in nanoseconds."""
    values = sorted(s / 1000.0 for s in samples_ns)
    return {
        "p50_us": percentile(values, 50),
        "p99_us": percentile(values, 99),
        "max_us": values[-1],
        "n": len(values),
    }


# -- parent side -----------------------------------------------------------------------------------------


class Worker:
    """A benchmark child process (``python -m bench.worker ROLE ARGS``), owned and stopped by the parent."""

    def __init__(self, role: str, args: dict[str, Any]) -> None:
        self.role = role
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        # Let children cache bytecode: recompiling the fabric in every fresh process costs ~0.5 s each
        # on a loaded machine, which is most of a --quick run's time.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._stderr = tempfile.TemporaryFile(mode="w+")
        # Unbuffered binary pipes: lines are split here, so select() never misses a line that a
        # buffered reader had already pulled in.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", role, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=str(REPO),
            bufsize=0,
        )
        self._buf = b""
        self._eof = False
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.events: list[dict[str, Any]] = []
        self.killed = False
        """True when :meth:`stop` had to kill the child (it did not exit in time: a shutdown bug)."""

    def stderr_tail(self, limit: int = 3000) -> str:
        """The last ``limit`` characters the child wrote to stderr."""
        self._stderr.seek(0)
        return self._stderr.read()[-limit:]

    def _read_event(self, deadline: float) -> dict[str, Any] | None:
        """Next protocol event before ``deadline`` (monotonic); None at EOF; raises BenchError on timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            if b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.decode(errors="replace")
            elif self._eof:
                return None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._sel.select(remaining):
                    raise BenchError(f"{self.role}: no event within the deadline; stderr:\n{self.stderr_tail()}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._eof = True
                self._buf += chunk
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # stray output from a library; the protocol lines are JSON objects
            if isinstance(event, dict) and "kind" in event:
                self.events.append(event)
                return event

    def wait(self, kind: str, timeout: float) -> dict[str, Any]:
        """Return the first event of ``kind``; raise BenchError on an ``error`` event, EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._read_event(deadline)
            if event is None:
                self.proc.wait(timeout=5)
                raise BenchError(
                    f"{self.role} exited ({self.proc.returncode}) before {kind!r}; stderr:\n{self.stderr_tail()}"
                )
            if event["kind"] == "error":
                raise BenchError(f"{self.role} failed: {event.get('message')}")
            if event["kind"] == kind:
                return event

    def send_endpoints(self, endpoints: dict[str, str]) -> None:
        """Hand a client started with ``endpoints_on_stdin`` its server's endpoints (one JSON line)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(endpoints) + "\n").encode())

    def request_stop(self) -> None:
        """Write ``stop`` to the child and close its stdin (idempotent; the child may already be gone)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Ask the child to stop, collect its ``final`` event if it sends one, and reap it (bounded).

        Kills the child by its own PID when it does not exit within ``timeout`` seconds.
        """
        final: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        self.request_stop()
        try:
            while True:
                event = self._read_event(deadline)
                if event is None:
                    break
                if event["kind"] == "final":
                    final = event
        except BenchError:
            pass  # no more output within the deadline; the kill below bounds the wait
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.killed = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._sel.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return final


@dataclass(frozen=True)
class Pair:
    """One measurement: a server role, a client role, and which of the two reports the result."""

    server: str
    client: str
    reporter: str = "server"
    """``"server"`` (throughput: the receiver counts) or ``"client"`` (latency: the caller times)."""


def run_pair(pair: Pair, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in two fresh processes; return the reporter's result merged with finals.

    The returned dict holds the reporter's ``result`` fields, plus ``server_final`` / ``client_final``
    when a side sent a ``final`` event, and ``killed`` (role names) when a child had to be killed.
    Raises BenchError when a child fails or exceeds ``timeout``.
    """
    server = Worker(pair.server, args)
    # The client starts at once (interpreter and imports overlap the server's) and waits for endpoints.
    client = Worker(pair.client, {**args, "endpoints_on_stdin": True})
    try:
        ready = server.wait("ready", timeout=30.0)
        client.send_endpoints(ready["endpoints"])
        reporter = server if pair.reporter == "server" else client
        result = dict(reporter.wait("result", timeout=timeout))
    finally:
        finals = {}
        client.request_stop()  # both stop at once; then each is reaped
        server.request_stop()
        finals["client_final"] = client.stop()
        finals["server_final"] = server.stop()
    result.pop("kind", None)
    killed = [w.role for w in (server, client) if w.killed]
    if killed:
        result["killed"] = killed
    for key, final in finals.items():
        if final is not None:
            final.pop("kind", None)
            result[key] = final
    return result


@dataclass(frozen=True)
class Spread:
    """Median and spread of one figure over the repetitions."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise ``values`` (non-empty)."""
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float]:
        """JSON form."""
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}
