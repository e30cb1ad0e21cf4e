"""The chaos cluster harness: N test hosts as real OS processes, and the faults to inflict on them.

Example::

    with Cluster(3, network=LoopbackNetwork()) as c:
        c.start()
        c.wait_converged(60)
        c.kill(2)
        c.restart(2)

Each host is a ``python -m fabric.testing.chaos.host`` process (see :mod:`.host`) with a fixed identity
(name ``hI``, node id, address, base port, data directory), so :meth:`Cluster.restart` brings back the same
node on the same endpoints with the same files. Commands go over the process's stdin/stdout pipes, never
over the network under test, so a partitioned host still answers. Processes are ended by their own PID
only; :meth:`Cluster.close` (also from ``with`` and ``atexit``) ends every process it started and removes
the network.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .history import Event, Receipt, load_events, load_receipts
from .net import LoopbackNetwork, NamespaceNetwork, Network, namespaces_possible

__all__ = ["Cluster", "ClusterError", "HostProcess", "default_network"]

REPO = Path(__file__).resolve().parents[3]


class ClusterError(RuntimeError):
    """A host did not start, answer or stop in time; the message names the host."""


def default_network(mode: str = "auto") -> Network:
    """``namespaces`` (raises when impossible), ``loopback``, or ``auto``: namespaces when possible."""
    if mode == "loopback":
        return LoopbackNetwork()
    if mode == "namespaces":
        return NamespaceNetwork()
    ok, _why = namespaces_possible()
    return NamespaceNetwork() if ok else LoopbackNetwork()


def _free_port_base(address: str, span: int = 16) -> int:
    """A base port with ``span`` free ports after it on ``address`` (loopback mode: hosts share the stack)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((address, 0))
            base = int(s.getsockname()[1])
        if base + span > 65000:
            continue
        try:
            for p in range(base, base + span):
                with socket.socket() as probe:
                    probe.bind((address, p))
            return base
        except OSError:
            continue
    raise ClusterError(f"no {span} free consecutive ports on {address}")


@dataclass
class HostProcess:
    """One running (or stopped) host: identity, process, and what it printed."""

    index: int
    name: str
    node_id: str
    address: str
    port: int
    data_dir: str
    run: int = -1
    proc: subprocess.Popen[str] | None = None
    paused: bool = False
    ready: dict[str, Any] = field(default_factory=dict)
    joined_at: float | None = None
    _replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stderr: list[str] = field(default_factory=list)

    @property
    def seed(self) -> str:
        """This host's membership endpoint (base port, channel 0)."""
        return f"tcp://{self.address}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the live process, None when it is not running."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.pid is not None

    def rss_kb(self) -> int | None:
        """VmRSS of the process in kB (from /proc), None when not running."""
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None


class Cluster:
    """N chaos hosts on a :class:`~.net.Network`; faults by host index."""

    def __init__(
        self,
        size: int,
        *,
        network: Network | None = None,
        data_root: str | None = None,
        rng_seed: int = 0,
        call_timeout: float = 2.0,
        rate: float = 0.0,
    ) -> None:
        if size < 1:
            raise ValueError("size: a cluster needs at least one host")
        self.network = network if network is not None else default_network()
        self.mode = self.network.mode
        self._own_root = data_root is None
        self.data_root = data_root or tempfile.mkdtemp(prefix="ffchaos")
        self.rng_seed = rng_seed
        self.call_timeout = call_timeout
        self.rate = rate
        self._req = 0
        self._req_lock = threading.Lock()  # the monitor thread and the scenario both send commands
        self._closed = False
        self.hosts: list[HostProcess] = []
        try:
            for i in range(size):
                self.network.add_host(i)
                address = self.network.address(i)
                port = 7100 if self.mode == "namespaces" else _free_port_base(address)
                self.hosts.append(HostProcess(i, f"h{i}", str(uuid.uuid4()), address, port, os.path.join(self.data_root, f"h{i}")))
        except BaseException:
            self.close()  # no half-built network left behind
            raise
        self.network.attach(self.command, self.names)  # loopback mode tells hosts about network faults
        atexit.register(self.close)

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        """Host names by index."""
        return [h.name for h in self.hosts]

    def _spawn(self, h: HostProcess, *, skew: float = 0.0) -> None:
        h.run += 1
        peers = json.dumps({x.name: x.node_id for x in self.hosts})
        args = [
            *self.network.exec_prefix(h.index), sys.executable, "-m", "fabric.testing.chaos.host",
            "--name", h.name, "--node-id", h.node_id, "--address", h.address, "--port", str(h.port),
            "--data-dir", h.data_dir, "--peers", peers, "--run", str(h.run), "--rate", str(self.rate),
            "--call-timeout", str(self.call_timeout), "--clock-skew", str(skew), "--rng-seed", str(self.rng_seed),
        ]
        for other in self.hosts:
            if other is not h:
                args += ["--seed", other.seed]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        h.ready, h.joined_at, h.paused = {}, None, False
        h.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        proc = h.proc
        threading.Thread(target=self._pump, args=(h, proc), daemon=True, name=f"chaos-{h.name}-out").start()
        threading.Thread(target=self._drain, args=(h, proc), daemon=True, name=f"chaos-{h.name}-err").start()

    def _pump(self, h: HostProcess, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            self._pump_lines(h, proc)
        except (OSError, ValueError):  # the stream was closed by stop()
            return

    def _pump_lines(self, h: HostProcess, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            with h._cond:
                if h.proc is not proc:
                    continue  # a line from a previous life
                if obj.get("event") == "ready":
                    h.ready = obj
                elif obj.get("event") == "joined":
                    h.joined_at = float(obj.get("t", time.time()))
                elif isinstance(obj.get("req"), int):
                    h._replies[obj["req"]] = obj
                h._cond.notify_all()

    def _drain(self, h: HostProcess, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                h._stderr.append(line.rstrip())
                del h._stderr[:-50]
        except (OSError, ValueError):  # the stream was closed by stop()
            return

    def _wait_ready(self, h: HostProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with h._cond:
            while not h.ready:
                if h.proc is None or h.proc.poll() is not None:
                    raise ClusterError(f"{h.name} exited before ready: {' | '.join(h._stderr[-5:])}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClusterError(f"{h.name} not ready within {timeout:g}s")
                h._cond.wait(min(left, 0.5))
        self.network.host_started(h.index)

    def start(self, timeout: float = 60.0) -> None:
        """Start every host that is not running and wait until each has bound its endpoints."""
        for h in self.hosts:
            if not h.running:
                self._spawn(h)
        for h in self.hosts:
            self._wait_ready(h, timeout)

    def command(self, index: int, cmd: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any] | None:
        """Send one command to host ``index``; its reply, or None when it is down, paused or silent."""
        h = self.hosts[index]
        if not h.running or h.paused or h.proc is None or h.proc.stdin is None:
            return None
        with self._req_lock:
            self._req += 1
            req = self._req
            try:
                h.proc.stdin.write(json.dumps({"req": req, "cmd": cmd, **fields}) + "\n")
                h.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return None
        deadline = time.monotonic() + timeout
        with h._cond:
            while req not in h._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not h.running:
                    return None
                h._cond.wait(min(left, 0.5))
            return h._replies.pop(req)

    def views(self) -> dict[str, list[str] | None]:
        """Host name -> the names it sees alive (None for a host that is down, paused or silent)."""
        out: dict[str, list[str] | None] = {}
        for h in self.hosts:
            reply = self.command(h.index, "members")
            out[h.name] = list(reply["alive"]) if reply is not None else None
        return out

    def agree(self, expected: Sequence[str] | None = None, views: dict[str, list[str] | None] | None = None) -> bool:
        """True when every answering host sees exactly ``expected`` (default: every running host) alive."""
        views = views if views is not None else self.views()
        want = sorted(expected) if expected is not None else sorted(h.name for h in self.hosts if h.running)
        answering = [v for v in views.values() if v is not None]
        return bool(answering) and all(sorted(v) == want for v in answering)

    def wait_until(self, condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> float | None:
        """Poll ``condition`` until true; seconds it took, or None after ``timeout``."""
        start = time.monotonic()
        while True:
            if condition():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                return None
            time.sleep(interval)

    def wait_converged(self, timeout: float, expected: Sequence[str] | None = None) -> float | None:
        """Seconds until every running host sees exactly ``expected`` alive (None after ``timeout``)."""
        return self.wait_until(lambda: self.agree(expected), timeout)

    def workload(self, rate: float) -> None:
        """Set every running host's workload rate (operations per second; 0 stops it)."""
        self.rate = rate
        for h in self.hosts:
            self.command(h.index, "workload", rate=rate)

    # -- process faults ------------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """``kill -9`` host ``index`` (by its PID) and reap it."""
        h = self.hosts[index]
        if h.proc is not None and h.proc.poll() is None:
            os.kill(h.proc.pid, signal.SIGKILL)
            h.proc.wait(timeout=10)
        h.paused = False

    def restart(self, index: int, *, skew: float = 0.0, timeout: float = 60.0) -> None:
        """Start host ``index`` again with the same identity, endpoints and data directory (kills it first if
        it still runs). ``skew`` shifts the wall clock its node sees (see :mod:`.host`)."""
        self.kill(index)
        h = self.hosts[index]
        self._spawn(h, skew=skew)
        self._wait_ready(h, timeout)

    def pause(self, index: int) -> None:
        """SIGSTOP host ``index``: a stall (a long GC pause, a frozen VM) with every socket left open."""
        h = self.hosts[index]
        if h.pid is not None:
            os.kill(h.pid, signal.SIGSTOP)
            h.paused = True

    def resume(self, index: int) -> None:
        """SIGCONT host ``index``."""
        h = self.hosts[index]
        if h.pid is not None:
            os.kill(h.pid, signal.SIGCONT)
        h.paused = False

    # -- network faults ------------------------------------------------------------------------------

    def partition(self, side_a: Sequence[int], side_b: Sequence[int], *, one_way: bool = False) -> None:
        """Cut ``side_a`` from ``side_b``; ``one_way``: only what ``side_a`` sends to ``side_b`` is dropped."""
        self.network.block(side_a, side_b)
        if not one_way:
            self.network.block(side_b, side_a)

    def loss(self, a: int, b: int, percent: int) -> None:
        """Random loss of ``percent`` % on the link between hosts ``a`` and ``b``, both ways."""
        self.network.loss(a, b, percent)

    def heal(self) -> None:
        """Remove every network fault."""
        self.network.heal()

    # -- results -------------------------------------------------------------------------------------

    def rss(self) -> dict[str, int | None]:
        """Host name -> VmRSS kB (None when down)."""
        return {h.name: h.rss_kb() for h in self.hosts}

    def histories(self) -> tuple[list[Event], list[Receipt]]:
        """Every host's client events and server receipts, read from their data directories."""
        events = load_events(os.path.join(h.data_dir, "history.jsonl") for h in self.hosts)
        receipts = load_receipts(os.path.join(h.data_dir, "receipts.jsonl") for h in self.hosts)
        return events, receipts

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every host: ``quit`` (resuming a paused one first), then SIGKILL any that lingers."""
        for h in self.hosts:
            if h.paused:
                self.resume(h.index)
        for h in self.hosts:
            if h.proc is not None and h.proc.poll() is None and h.proc.stdin is not None:
                try:
                    h.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                    h.proc.stdin.flush()
                except (BrokenPipeError, OSError, ValueError):
                    pass
        deadline = time.monotonic() + timeout
        for h in self.hosts:
            if h.proc is None:
                continue
            try:
                h.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(h.proc.pid, signal.SIGKILL)
                h.proc.wait(timeout=10)
            for stream in (h.proc.stdin, h.proc.stdout, h.proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop every host, remove the network and (if this cluster made it) the data directory."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self.network.close()
            if self._own_root:
                shutil.rmtree(self.data_root, ignore_errors=True)
