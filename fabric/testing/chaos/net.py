"""Test hosts' networks: network namespaces on a private bridge with nftables faults, or loopback aliases.

Theory of operation
-------------------
:class:`NamespaceNetwork` (root, ``ip`` and ``nft`` present) creates, for a run with prefix ``P``:

* one namespace ``P-br`` holding a Linux bridge ``br0`` (the switch),
* per host ``i`` a namespace ``P-hI`` with ``lo`` up and ``eth0`` = ``10.213.0.(I+10)/24``, the other end of
  its veth pair plugged into ``br0`` as ``vI``,
* per host an nftables table ``inet ffchaos`` with an ``input`` chain (hook input, priority 0).

Nothing is created in, or routed from, the caller's namespace: the addresses exist only inside the
namespaces, and :meth:`close` deletes them all (also from an ``atexit`` hook if the caller forgets).

Faults are rules in the *receiving* host's input chain: a partition of A from B drops on every host of B
what comes from A (one-way) and, for a two-way partition, also the reverse; loss on a link drops a random
``numgen random mod 100`` share of what each end receives from the other. netem (delay, duplication,
reordering) needs the ``sch_netem`` qdisc; :meth:`NamespaceNetwork.netem_status` tries it once in the run's namespace
and every report says whether it was there.

:class:`LoopbackNetwork` is the fallback without namespaces: host ``i`` binds ``127.0.0.(I+10)``.
Partitions and loss are injected by the fabric's transport there: the network keeps the same rules (what
each host drops from whom, and the loss per link) and sends each affected host a ``faults`` command, which
puts a :class:`~fabric.FaultPolicy` on its node's ZeroMQ transport (``drop_from`` / ``loss_from``: the
receiving side drops, as the namespaces' input chains do). A host that restarts gets its rules again as
soon as it is ready (:meth:`Network.host_started`); until then (a fraction of a second) it is unfiltered.
The difference from nftables: messages are dropped, not packets, so TCP never sees a fault (a one-way cut
stays one-way for every connection), and netem is not available.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ChaosNetError", "LoopbackNetwork", "NamespaceNetwork", "Network", "namespaces_possible", "tool"]

TABLE = "ffchaos"


class ChaosNetError(RuntimeError):
    """A network setup or fault command failed; the message names the command and its stderr."""


def tool(name: str) -> str | None:
    """Path of an executable (also looked up in /usr/sbin and /sbin, which a non-root PATH may lack)."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)


def namespaces_possible() -> tuple[bool, str]:
    """Whether this process can run the namespace mode, and why not when it cannot."""
    if os.geteuid() != 0:
        return False, "not root"
    for name in ("ip", "nft"):
        if tool(name) is None:
            return False, f"{name!r} is not installed"
    return True, ""


def _run(args: Sequence[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise ChaosNetError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


class Network:
    """What a cluster needs from its network: per-host addresses, a command prefix, and faults."""

    mode = "abstract"
    supports_partitions = False
    fault_injection = "none"
    """How partitions and loss are made: ``nftables`` (namespaces), ``transport`` (loopback), ``none``."""

    def attach(self, command: Callable[..., dict[str, Any] | None], names: Sequence[str]) -> None:
        """The cluster's :meth:`~.cluster.Cluster.command` and host names (for networks that tell hosts
        about faults)."""

    def host_started(self, index: int) -> None:
        """Host ``index`` (re)started and is ready: re-apply whatever it must enforce itself."""

    def address(self, index: int) -> str:
        """IPv4 address host ``index`` binds."""
        raise NotImplementedError

    def exec_prefix(self, index: int) -> list[str]:
        """Argv prefix that runs a command on host ``index``."""
        raise NotImplementedError

    def add_host(self, index: int) -> None:
        """Create host ``index``'s network (idempotent)."""

    def block(self, sources: Sequence[int], targets: Sequence[int]) -> None:
        """Drop every packet from ``sources`` arriving at ``targets`` (one way)."""
        raise ChaosNetError(f"partitions are not supported in {self.mode} mode")

    def loss(self, a: int, b: int, percent: int) -> None:
        """Drop ``percent`` % of the packets between ``a`` and ``b``, both ways."""
        raise ChaosNetError(f"packet loss is not supported in {self.mode} mode")

    def heal(self) -> None:
        """Remove every partition and loss rule."""

    def netem(self, index: int, spec: str) -> None:
        """Apply a netem qdisc (``spec`` like ``delay 50ms 10ms duplicate 1%``) on host ``index``'s link."""
        raise ChaosNetError(f"netem is not supported in {self.mode} mode")

    def netem_status(self) -> str:
        """``available`` or ``unavailable: WHY``."""
        return f"unavailable: {self.mode} mode"

    def close(self) -> None:
        """Remove everything this network created (idempotent)."""


class LoopbackNetwork(Network):
    """Hosts are processes on 127.0.0.x of the caller's own loopback; partitions and loss are injected by
    each host's transport (see the module docstring), process faults as everywhere."""

    mode = "loopback"
    supports_partitions = True
    fault_injection = "transport"

    def __init__(self) -> None:
        self._blocked: set[tuple[int, int]] = set()  # (source, target): target drops what source sends
        self._loss: dict[tuple[int, int], int] = {}  # (source, target) -> percent target drops
        self._command: Callable[..., dict[str, Any] | None] | None = None
        self._names: list[str] = []

    def address(self, index: int) -> str:
        return f"127.0.0.{index + 10}"

    def exec_prefix(self, index: int) -> list[str]:
        return []

    def attach(self, command: Callable[..., dict[str, Any] | None], names: Sequence[str]) -> None:
        self._command = command
        self._names = list(names)

    def policy(self, index: int) -> dict[str, Any]:
        """The ``faults`` command fields host ``index`` enforces (empty: none)."""
        out: dict[str, Any] = {}
        drop = sorted(self._names[s] for s, t in self._blocked if t == index)
        loss = {self._names[s]: p / 100 for (s, t), p in sorted(self._loss.items()) if t == index}
        if drop:
            out["drop_from"] = drop
        if loss:
            out["loss_from"] = loss
        return out

    def _push(self, index: int) -> None:
        if self._command is None:
            raise ChaosNetError("loopback faults need a cluster (Cluster attaches itself to its network)")
        reply = self._command(index, "faults", **self.policy(index))
        if reply is not None and "error" in reply:  # None: the host is down or paused; host_started re-applies
            raise ChaosNetError(f"h{index}: {reply['error']}")

    def block(self, sources: Sequence[int], targets: Sequence[int]) -> None:
        for t in targets:
            self._blocked.update((s, t) for s in sources if s != t)
            self._push(t)

    def loss(self, a: int, b: int, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"percent: {percent} is not in 0..100")
        self._loss[(a, b)] = self._loss[(b, a)] = percent
        self._push(a)
        self._push(b)

    def heal(self) -> None:
        touched = {t for _s, t in self._blocked} | {t for _s, t in self._loss}
        self._blocked.clear()
        self._loss.clear()
        for t in sorted(touched):
            self._push(t)

    def host_started(self, index: int) -> None:
        if self.policy(index):
            self._push(index)


class NamespaceNetwork(Network):
    """One namespace per host on a private bridge; faults are nftables rules in the hosts' namespaces."""

    mode = "namespaces"
    supports_partitions = True
    fault_injection = "nftables"

    def __init__(self, prefix: str | None = None) -> None:
        ok, why = namespaces_possible()
        if not ok:
            raise ChaosNetError(f"network namespaces unavailable: {why}")
        self.ip = tool("ip") or "ip"
        self.nft = tool("nft") or "nft"
        self.tc = tool("tc")
        self.prefix = prefix or f"ffc{os.getpid()}"
        self.bridge_ns = f"{self.prefix}-br"
        self._hosts: set[int] = set()
        self._closed = False
        self._netem: str | None = None
        self._netem_hosts: set[int] = set()
        atexit.register(self.close)
        try:
            _run([self.ip, "netns", "add", self.bridge_ns])
            _run([self.ip, "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
            _run([self.ip, "-n", self.bridge_ns, "link", "set", "br0", "up"])
        except Exception:
            self.close()
            raise

    def ns(self, index: int) -> str:
        """Namespace name of host ``index``."""
        return f"{self.prefix}-h{index}"

    def address(self, index: int) -> str:
        return f"10.213.0.{index + 10}"

    def exec_prefix(self, index: int) -> list[str]:
        return [self.ip, "netns", "exec", self.ns(index)]

    def add_host(self, index: int) -> None:
        if index in self._hosts:
            return
        ns = self.ns(index)
        _run([self.ip, "netns", "add", ns])
        self._hosts.add(index)
        _run([self.ip, "-n", ns, "link", "set", "lo", "up"])
        _run([self.ip, "-n", self.bridge_ns, "link", "add", f"v{index}", "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run([self.ip, "-n", self.bridge_ns, "link", "set", f"v{index}", "master", "br0", "up"])
        _run([self.ip, "-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0"])
        _run([self.ip, "-n", ns, "link", "set", "eth0", "up"])
        self._nft(index, f"add table inet {TABLE}\nadd chain inet {TABLE} input {{ type filter hook input priority 0; }}\n")

    def _nft(self, index: int, script: str) -> None:
        _run([*self.exec_prefix(index), self.nft, "-f", "-"], stdin=script)

    def block(self, sources: Sequence[int], targets: Sequence[int]) -> None:
        for t in targets:
            rules = "".join(f"add rule inet {TABLE} input ip saddr {self.address(s)} drop\n" for s in sources if s != t)
            if rules:
                self._nft(t, rules)

    def loss(self, a: int, b: int, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"percent: {percent} is not in 0..100")
        for src, dst in ((a, b), (b, a)):
            self._nft(dst, f"add rule inet {TABLE} input ip saddr {self.address(src)} numgen random mod 100 < {percent} drop\n")

    def heal(self) -> None:
        for i in sorted(self._hosts):
            self._nft(i, f"flush chain inet {TABLE} input\n")
        for i in sorted(self._netem_hosts):
            _run([*self.exec_prefix(i), self.tc or "tc", "qdisc", "del", "dev", "eth0", "root"], check=False)
        self._netem_hosts.clear()

    def netem_status(self) -> str:
        if self._netem is None:
            if self.tc is None:
                self._netem = "unavailable: tc is not installed"
            elif not self._hosts:
                return "unknown: no host yet"
            else:
                i = min(self._hosts)
                done = _run([*self.exec_prefix(i), self.tc, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms"], check=False)
                if done.returncode == 0:
                    _run([*self.exec_prefix(i), self.tc, "qdisc", "del", "dev", "eth0", "root"], check=False)
                    self._netem = "available"
                else:
                    self._netem = f"unavailable on this kernel ({done.stderr.strip().splitlines()[0] if done.stderr.strip() else done.returncode})"
        return self._netem

    def netem(self, index: int, spec: str) -> None:
        status = self.netem_status()
        if status != "available":
            raise ChaosNetError(f"netem: {status}")
        _run([*self.exec_prefix(index), self.tc or "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec.split()])
        self._netem_hosts.add(index)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for i in sorted(self._hosts):
            _run([self.ip, "netns", "del", self.ns(i)], check=False)
        _run([self.ip, "netns", "del", self.bridge_ns], check=False)
        self._hosts.clear()
