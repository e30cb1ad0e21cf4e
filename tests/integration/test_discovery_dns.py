"""DNS discovery against a real dnsmasq on 127.0.0.1 (A, AAAA, SRV, changes, outages, truncation)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import pytest

from fabric.discovery import Candidate, DnsConfig, DnsPlugin, LocalNode
from tests.support import require_tool, short_tmpdir

DOMAIN = "cluster.test"
SRV_NAME = f"_foundation._tcp.{DOMAIN}"
LOCAL = LocalNode(node_id=str(uuid.uuid4()), name="tester", endpoints={"membership": "tcp://127.0.0.1:1"})


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (dnsmasq serves both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Dnsmasq:
    """A dnsmasq we start on 127.0.0.1:<port>, serving a hosts file and SRV records; stopped by its PID."""

    def __init__(self, workdir: str, port: int | None = None) -> None:
        self.binary = require_tool("dnsmasq", reason="(Debian package dnsmasq-base)")
        self.port = port or free_port()
        self.hosts = Path(workdir) / "hosts"
        self.hosts.write_text("")
        self.pidfile = Path(workdir) / "dnsmasq.pid"
        self.log = Path(workdir) / "dnsmasq.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.srv: list[tuple[str, int]] = []

    def set_hosts(self, entries: Sequence[tuple[str, str]]) -> None:
        """Replace the A/AAAA records: (address, name) pairs. Call reload() if running."""
        self.hosts.write_text("".join(f"{addr} {name}\n" for addr, name in entries))

    def start(self, srv: Sequence[tuple[str, int]] = ()) -> None:
        """Start (or restart on the same port) with SRV records (target, port) under SRV_NAME."""
        self.srv = list(srv)
        args = [
            self.binary, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={self.port}",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--addn-hosts={self.hosts}", f"--local=/{DOMAIN}/", f"--pid-file={self.pidfile}",
            "--local-ttl=0", "--log-facility=-",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")  # do not drop to 'nobody', which could not read our tmp files
        args += [f"--srv-host={SRV_NAME},{target},{port}" for target, port in self.srv]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        query = dns.message.make_query(f"ready.{DOMAIN}", "A")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.log.read_text()[-2000:]}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                return
            except (dns.exception.Timeout, OSError):
                continue
        raise TimeoutError("dnsmasq did not answer within 10 s")

    def reload(self) -> None:
        """SIGHUP: dnsmasq re-reads --addn-hosts (SRV records need a restart)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def pause(self) -> None:
        """SIGSTOP: the server stays bound but answers nothing (queries time out)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


class _SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "took" in record.getMessage():
            self.messages.append(record.getMessage())


def run_without_blocking(scenario: Coroutine[Any, Any, None], limit: float = 0.25) -> None:
    """asyncio.run in debug mode; fail if any callback held the loop over ``limit`` s or a thread leaked.

    A plugin that resolved or waited synchronously would hold the loop for a whole DNS timeout.
    """
    threads_before = {t.ident for t in threading.enumerate()}
    handler = _SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)

    async def checked() -> None:
        asyncio.get_running_loop().slow_callback_duration = limit
        await scenario

    try:
        asyncio.run(checked(), debug=True)
    finally:
        asyncio_log.removeHandler(handler)
    assert handler.messages == [], handler.messages
    leaked = [t for t in threading.enumerate() if t.ident not in threads_before and not t.daemon]
    assert leaked == [], leaked


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with short_tmpdir("ffdns") as workdir:
        server = Dnsmasq(workdir)
        try:
            yield server
        finally:
            server.stop()


def plugin_for(server: Dnsmasq, query: str, record_type: str = "A", **kw: object) -> DnsPlugin:
    options: dict[str, object] = {"timeout": 2.0, **kw}
    return DnsPlugin(DnsConfig.local(query, record_type=record_type, nameservers=("127.0.0.1",),
                                     nameserver_port=server.port, **options))


async def until(
    poll: Callable[[], Awaitable[list[Candidate]]], predicate: Callable[[list[Candidate]], bool], timeout: float = 10.0
) -> list[Candidate]:
    """Poll the real server until the answer satisfies ``predicate`` (dnsmasq reloads asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await poll()
        if predicate(result):
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"last answer: {[c.seed for c in result]}")
        await asyncio.sleep(0.05)


def seeds(candidates: list[Candidate]) -> set[str]:
    return {c.seed for c in candidates}


def test_a_records_added_and_removed_while_running(dnsmasq: Dnsmasq) -> None:
    name = f"nodes.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.11", name), ("127.0.0.12", name)])
    dnsmasq.start()

    async def scenario() -> None:
        plugin = plugin_for(dnsmasq, name, port=7946)
        await plugin.start(LOCAL)
        first = await plugin.lookup()
        assert seeds(first) == {"tcp://127.0.0.11:7946", "tcp://127.0.0.12:7946"}
        cand = next(c for c in first if c.seed.endswith("11:7946"))
        # Port base P: every channel at P+i, in the fixed channel order.
        assert dict(cand.endpoints) == {
            "membership": "tcp://127.0.0.11:7946", "coordination": "tcp://127.0.0.11:7947",
            "gossip": "tcp://127.0.0.11:7948", "data": "tcp://127.0.0.11:7949", "events": "tcp://127.0.0.11:7950",
        }
        assert cand.node_id is None and cand.source == "dns" and cand.meta["dns_name"] == name

        dnsmasq.set_hosts([("127.0.0.11", name), ("127.0.0.12", name), ("127.0.0.13", name)])
        dnsmasq.reload()
        await until(plugin.lookup, lambda r: "tcp://127.0.0.13:7946" in seeds(r))

        dnsmasq.set_hosts([("127.0.0.12", name), ("127.0.0.13", name)])
        dnsmasq.reload()
        after = await until(plugin.lookup, lambda r: "tcp://127.0.0.11:7946" not in seeds(r))
        assert seeds(after) == {"tcp://127.0.0.12:7946", "tcp://127.0.0.13:7946"}

        # Every record gone: NXDOMAIN is a real answer, so the list empties.
        dnsmasq.set_hosts([])
        dnsmasq.reload()
        await until(plugin.lookup, lambda r: r == [])
        assert plugin.stats()["failures"] == 0
        await plugin.stop()

    asyncio.run(scenario())


def test_aaaa_and_both_families(dnsmasq: Dnsmasq) -> None:
    name = f"dual.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.21", name), ("::1", name)])
    dnsmasq.start()

    async def scenario() -> None:
        six = plugin_for(dnsmasq, name, "AAAA", port=9000)
        both = plugin_for(dnsmasq, name, "A+AAAA", port=9000)
        for p in (six, both):
            await p.start(LOCAL)
        assert seeds(await six.lookup()) == {"tcp://[::1]:9000"}
        assert seeds(await both.lookup()) == {"tcp://127.0.0.21:9000", "tcp://[::1]:9000"}
        for p in (six, both):
            await p.stop()

    asyncio.run(scenario())


def test_srv_records_unknown_target_and_restart_on_same_port(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts([("127.0.0.31", f"n1.{DOMAIN}"), ("127.0.0.32", f"n2.{DOMAIN}")])
    dnsmasq.start(srv=[(f"n1.{DOMAIN}", 7001), (f"n2.{DOMAIN}", 7002), (f"ghost.{DOMAIN}", 7003)])

    async def scenario() -> None:
        plugin = plugin_for(dnsmasq, SRV_NAME, "SRV")
        await plugin.start(LOCAL)
        found = await plugin.lookup()
        # The SRV pointing at a host with no address is logged, counted and skipped; the others stand.
        assert seeds(found) == {"tcp://127.0.0.31:7001", "tcp://127.0.0.32:7002"}
        assert plugin.stats()["unresolvable_targets"] == 1
        assert plugin.stats()["failures"] == 0
        by_seed = {c.seed: c for c in found}
        assert by_seed["tcp://127.0.0.31:7001"].name == f"n1.{DOMAIN}"
        assert by_seed["tcp://127.0.0.32:7002"].endpoints["events"] == "tcp://127.0.0.32:7006"

        # SRV changes need a restart; same port, so the plugin's configuration stays valid.
        await asyncio.to_thread(dnsmasq.stop)
        await asyncio.to_thread(dnsmasq.start, [(f"n2.{DOMAIN}", 7002)])
        after = await until(plugin.lookup, lambda r: seeds(r) == {"tcp://127.0.0.32:7002"})
        assert after[0].meta["srv_priority"] == "0"
        await plugin.stop()

    run_without_blocking(scenario())


def test_server_down_or_silent_keeps_last_good_answer(dnsmasq: Dnsmasq) -> None:
    name = f"nodes.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.41", name), ("127.0.0.42", name)])
    dnsmasq.start()

    async def scenario() -> None:
        plugin = plugin_for(dnsmasq, name, timeout=1.0)  # the paused server costs one full timeout
        await plugin.start(LOCAL)
        good = await plugin.lookup()
        assert len(good) == 2
        first_success = plugin.last_success

        await asyncio.to_thread(dnsmasq.pause)  # bound but silent: real timeouts
        try:
            assert await plugin.lookup() == good
            assert plugin.stats()["failures"] == 1
        finally:
            await asyncio.to_thread(dnsmasq.resume)

        await asyncio.to_thread(dnsmasq.stop)  # gone: refused / timeouts
        assert await plugin.lookup() == good
        assert await plugin.lookup() == good
        assert plugin.stats()["failures"] == 3
        assert plugin.last_success == first_success  # multi ages the answer out from here

        await asyncio.to_thread(dnsmasq.set_hosts, [("127.0.0.43", name)])
        await asyncio.to_thread(dnsmasq.start)
        await until(plugin.lookup, lambda r: seeds(r) == {"tcp://127.0.0.43:7946"})
        await plugin.stop()

    run_without_blocking(scenario())


def test_refused_query_is_a_failure_not_an_empty_answer(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts([("127.0.0.51", f"nodes.{DOMAIN}")])
    dnsmasq.start()

    async def scenario() -> None:
        # dnsmasq has no upstream: a name outside its local domain is REFUSED (all servers failed).
        plugin = plugin_for(dnsmasq, "nodes.elsewhere.example")
        await plugin.start(LOCAL)
        assert await plugin.lookup() == []
        assert plugin.stats()["failures"] == 1
        assert plugin.last_success is None
        await plugin.stop()

    asyncio.run(scenario())


def test_truncated_udp_answer_is_completed_over_tcp(dnsmasq: Dnsmasq) -> None:
    name = f"big.{DOMAIN}"
    addresses = [f"127.0.{i // 200}.{i % 200 + 1}" for i in range(150)]
    dnsmasq.set_hosts([(a, name) for a in addresses])
    dnsmasq.start()
    # Over plain UDP (no EDNS) the answer does not fit in 512 bytes: the server sets TC.
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=dnsmasq.port, timeout=2)
    assert reply.flags & dns.flags.TC

    async def scenario() -> None:
        plugin = plugin_for(dnsmasq, name, timeout=2.0)
        await plugin.start(LOCAL)
        found = await plugin.lookup()
        assert len(found) == 150  # never a partial list from a truncated answer
        await plugin.stop()

    asyncio.run(scenario())


def test_prune_off_keeps_candidates_from_partial_answers(dnsmasq: Dnsmasq) -> None:
    name = f"many.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.71", name), ("127.0.0.72", name)])
    dnsmasq.start()

    async def scenario() -> None:
        plugin = plugin_for(dnsmasq, name, prune=False)
        await plugin.start(LOCAL)
        assert len(await plugin.lookup()) == 2
        # A server answering with a subset (libcluster #190) must not make the cluster flap.
        await asyncio.to_thread(dnsmasq.set_hosts, [("127.0.0.73", name)])
        await asyncio.to_thread(dnsmasq.reload)
        found = await until(plugin.lookup, lambda r: "tcp://127.0.0.73:7946" in seeds(r))
        assert seeds(found) == {"tcp://127.0.0.71:7946", "tcp://127.0.0.72:7946", "tcp://127.0.0.73:7946"}
        await plugin.stop()

    run_without_blocking(scenario())
