"""``foundation-node doctor``: check a node from the outside in and say what is wrong and how to fix it.

Theory of operation
-------------------
:func:`diagnose` walks from the outside in (config file, discovery, endpoint syntax, name resolution, a
raw ZMTP probe of the port, HELLO, the node's own view) and turns each problem into a :class:`Finding`
with what is wrong and how to fix it. Raw probing (:func:`probe_zmtp`) tells apart "nothing listens",
"listens but is not ZeroMQ" (wrong port), "ZeroMQ but the wrong socket" (another channel's port) and
"accepts but never answers" (a hung or stopped process).

Blocking, every step bounded; runs on the caller's thread. Uses the library's public API only
(:class:`fabric.admin.AdminClient`, :mod:`fabric.settings`, :mod:`fabric.discovery.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fabric.admin import AdminClient, AdminError, AdminUnreachable, AdminUnsupported
from fabric.errors import ConfigError
from fabric.settings import SettingsError, check_endpoint

WallClock = Callable[[], float]
"""Seconds since the Unix epoch (``time.time``); injected so tests can skew a clock."""


@dataclass(frozen=True)
class Finding:
    """One doctor result: ``level`` ok / warn / fail, the ``check`` it belongs to, what and how to fix."""

    level: str
    check: str
    message: str
    fix: str = ""


def _diagnose_discovery(
    report: DoctorReport, strategy: str, options: Any, timeout: float, say: Callable[[str], None]
) -> None:
    """Run discovery once (reusing ``discover``) and turn what it sees into findings."""
    from fabric.discovery import DiscoveryError
    from fabric.discovery.report import discover

    say(f"running discovery strategy {strategy}")
    settle = 3.0 if strategy in ("mdns", "gossip") else 0.0
    try:
        result = asyncio.run(discover(strategy, options, settle=settle, probe=True, probe_timeout=timeout))
    except DiscoveryError as exc:
        report.add("fail", "discovery", f"{strategy}: {exc}", "fix the strategy name or its options (docs/discovery.md)")
        return
    if not result.backend_answered:
        report.add("fail", "discovery", f"{strategy}: the backend did not answer ({dict(result.counters)})",
                   "check that the discovery service (DNS server, Consul agent, API server) is up and reachable")
    if not result.candidates:
        report.add("fail", "discovery", f"{strategy} found no candidate",
                   "check the query/selector/seeds, and that other nodes announce or are registered")
        return
    for entry in result.candidates:
        seed = entry.candidate.seed
        bad = [p for p in entry.probes if not p.ok and p.status != "skipped"]
        if entry.reachable and not bad:
            report.add("ok", "discovery", f"{seed} (via {entry.candidate.source}) answers on every channel")
        else:
            why = "; ".join(f"{p.channel} {p.endpoint}: {p.status}" for p in bad) or "membership endpoint not reachable"
            report.add("fail", "discovery", f"candidate {seed} cannot be linked: {why}",
                       "the node there is down or advertises the wrong port/address (check bind, port, advertise)")


@dataclass
class DoctorReport:
    """Everything doctor found; ``ok`` is False when any finding failed."""

    target: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failed finding."""
        return all(f.level != "fail" for f in self.findings)

    def add(self, level: str, check: str, message: str, fix: str = "") -> None:
        """Record a finding."""
        self.findings.append(Finding(level, check, message, fix))


_ZMTP_SIGNATURE_HEAD = b"\xff"
_ZMTP_SIGNATURE_TAIL = b"\x7f"
EXPECTED_SOCKET = {"control": "ROUTER", "bulk": "PULL", "broadcast": "XPUB"}
"""The socket type a node binds for each channel kind (broadcast: an XPUB, which bounds subscriptions;
nodes before issue 16 bound a PUB, which a SUB talks to the same way)."""
_PROBE_AS = {"ROUTER": "DEALER", "PULL": "PUSH", "XPUB": "SUB", "PUB": "SUB"}


def _wrong_type(actual: str, expect: str) -> bool:
    """True when a probed socket type is not what the channel binds (a PUB passes for an XPUB)."""
    return bool(actual) and actual != expect and not (expect == "XPUB" and actual == "PUB")


@dataclass(frozen=True)
class ProbeResult:
    """What a raw ZMTP probe of a TCP endpoint saw."""

    outcome: str
    """``zmtp`` (a ZeroMQ peer answered), ``refused``, ``timeout`` (TCP accepted, nothing answered),
    ``not_zmtp`` (something else answered), ``unreachable`` (no route, connect timed out)."""
    detail: str = ""
    socket_type: str = ""
    mechanism: str = ""


def zmtp_greeting(mechanism: str = "NULL") -> bytes:
    """A ZMTP 3.0 greeting for ``mechanism`` (NULL or CURVE), as a client (64 octets)."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + mechanism.encode().ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def zmtp_ready(socket_type: str) -> bytes:
    """A ZMTP READY command frame announcing ``socket_type``."""
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type.encode()
    return b"\x04" + bytes([len(body)]) + body


def parse_zmtp(data: bytes) -> tuple[str, str] | None:
    """Parse a peer's greeting + READY: ``(mechanism, socket_type)``, None if more bytes are needed.

    Raises ValueError when the bytes are not ZMTP 3 (no signature).
    """
    if len(data) >= 1 and data[:1] != _ZMTP_SIGNATURE_HEAD:
        raise ValueError(f"not a ZeroMQ greeting: {data[:24]!r}")
    if len(data) >= 10 and data[9:10] != _ZMTP_SIGNATURE_TAIL:
        raise ValueError(f"not a ZeroMQ greeting: {data[:24]!r}")
    if len(data) < 64:
        return None
    mechanism = data[12:32].rstrip(b"\x00").decode("ascii", "replace")
    rest = data[64:]
    if mechanism != "NULL":
        return mechanism, ""
    if len(rest) < 2:
        return None
    flags = rest[0]
    if flags & 0x02:
        if len(rest) < 9:
            return None
        size, off = struct.unpack(">Q", rest[1:9])[0], 9
    else:
        size, off = rest[1], 2
    if len(rest) < off + size:
        return None
    body = rest[off : off + size]
    nlen = body[0]
    command = body[1 : 1 + nlen]
    if command != b"READY":
        return mechanism, ""
    i = 1 + nlen
    props: dict[str, str] = {}
    while i < len(body):
        klen = body[i]
        key = body[i + 1 : i + 1 + klen].decode("ascii", "replace")
        i += 1 + klen
        (vlen,) = struct.unpack(">I", body[i : i + 4])
        props[key.lower()] = body[i + 4 : i + 4 + vlen].decode("ascii", "replace")
        i += 4 + vlen
    return mechanism, props.get("socket-type", "")


def probe_zmtp(host: str, port: int, *, expect: str = "ROUTER", timeout: float = 2.0) -> ProbeResult:
    """Open a TCP connection, exchange ZMTP greetings, read the peer's socket type. Blocking, bounded.

    ``expect`` is the socket type we hope to find; a compatible READY is sent once the peer's READY is
    read, so the peer sees a complete handshake before we close. A CURVE server (secure mode) hangs up
    on a NULL greeting at once: then the probe greets again as a CURVE client and reports the mechanism
    (the socket type travels encrypted, so it stays unknown).
    """
    result = _probe_once(host, port, expect=expect, timeout=timeout, mechanism="NULL")
    if result.outcome == "not_zmtp" and result.detail.startswith("closed"):
        curve = _probe_once(host, port, expect=expect, timeout=timeout, mechanism="CURVE")
        if curve.outcome == "zmtp" and curve.mechanism == "CURVE":
            return curve
    return result


def _probe_once(host: str, port: int, *, expect: str, timeout: float, mechanism: str) -> ProbeResult:
    import socket as _socket

    try:
        sock = _socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return ProbeResult("refused", "connection refused")
    except TimeoutError:
        return ProbeResult("unreachable", f"TCP connect timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult("unreachable", exc.strerror or str(exc))
    data = b""
    try:
        sock.settimeout(timeout)
        # Greeting only: the peer sends its READY (with its socket type) after the greetings, before it
        # sees ours, so an incompatible type cannot make it hang up before we learn what it is.
        sock.sendall(zmtp_greeting(mechanism))
        deadline = time.monotonic() + timeout
        nudge_at = time.monotonic() + timeout / 2
        while True:
            try:
                parsed = parse_zmtp(data)
            except ValueError as exc:
                return ProbeResult("not_zmtp", str(exc))
            if parsed is not None:
                if parsed[0] == "NULL":
                    with contextlib.suppress(OSError):
                        sock.sendall(zmtp_ready(_PROBE_AS.get(expect, "DEALER")))
                return ProbeResult("zmtp", socket_type=parsed[1], mechanism=parsed[0])
            now = time.monotonic()
            if not data and nudge_at and now >= nudge_at:
                # A live ZeroMQ peer greets at once. Silence so far: a hung process, or a line-based
                # server (HTTP ...) waiting for a line end; the blank lines make the latter answer.
                nudge_at = 0.0
                with contextlib.suppress(OSError):
                    sock.sendall(b"\r\n\r\n")
            remaining = (nudge_at if nudge_at and not data else deadline) - now
            if remaining <= 0 and now >= deadline:
                raise TimeoutError
            sock.settimeout(max(remaining, 0.001))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if not chunk:
                if data:
                    return ProbeResult("not_zmtp", f"closed after {data[:24]!r}")
                return ProbeResult("not_zmtp", "closed the connection without a ZeroMQ greeting")
            data += chunk
    except TimeoutError:
        if data:
            return ProbeResult("not_zmtp", f"incomplete greeting {data[:24]!r}")
        return ProbeResult("timeout", f"accepted the TCP connection but sent nothing within {timeout:g}s")
    except OSError as exc:
        return ProbeResult("not_zmtp", exc.strerror or str(exc))
    finally:
        sock.close()


def _explain_probe(report: DoctorReport, check: str, what: str, endpoint: str, result: ProbeResult, expect: str,
                   *, key_given: bool = False) -> bool:
    """Turn a probe result into findings; returns True when the endpoint is the expected socket.
    ``key_given``: the target carried ``#KEY``, so a CURVE endpoint is what we hoped for."""
    if result.outcome == "refused":
        report.add("fail", check, f"nothing listens at {endpoint} (connection refused): the node is not running (dead node) "
                   "or this is the wrong port",
                   "start the node, or use the address it prints at start (`seed=`)")
    elif result.outcome == "unreachable":
        report.add("fail", check, f"{endpoint} is unreachable: {result.detail}",
                   "check routing and firewalls between here and the node, and its `advertise` address")
    elif result.outcome == "timeout":
        report.add("fail", check, f"dead node: {endpoint} {result.detail}: the process is hung, stopped or overloaded",
                   "look at the node's process (is it stopped or stuck?) and restart it")
    elif result.outcome == "not_zmtp":
        report.add("fail", check, f"wrong port: {endpoint} is not a ZeroMQ endpoint ({result.detail})",
                   "point at the node's seed (membership) address, printed at start as `seed=`")
    elif result.mechanism == "CURVE" and key_given:
        report.add("ok", check, f"{endpoint} answers as a CURVE endpoint (secure mode)")
        return True
    elif result.mechanism == "CURVE":
        report.add("fail", check, f"{endpoint} runs CURVE (secure mode): doctor needs the node's public key",
                   "give doctor the node's admin address with its key, printed at start as `admin=...#KEY`")
    elif result.mechanism and result.mechanism != "NULL":
        report.add("fail", check, f"{endpoint} wants the {result.mechanism} security mechanism; this tool speaks NULL",
                   "configure matching security on both sides")
    elif _wrong_type(result.socket_type, expect):
        report.add("fail", check, f"wrong port: {endpoint} is a {result.socket_type} socket, not the {what} ({expect})",
                   "the seed is the node's base port (channel 0, membership); other ports are its other channels")
    else:
        report.add("ok", check, f"{endpoint} answers as a ZeroMQ {result.socket_type or expect} socket")
        return True
    return False


def diagnose(
    endpoint: str | None,
    *,
    config_file: str | None = None,
    timeout: float = 2.0,
    max_skew: float = 1.0,
    progress: Callable[[str], None] | None = None,
    wall_clock: WallClock = time.time,
    strategy: str | None = None,
    strategy_options: Any = None,
) -> DoctorReport:
    """Check a node from the outside in and return every finding (blocking, every step bounded).

    Steps: the TOML ``config_file`` (if given); the discovery ``strategy`` (if given: what it finds and
    whether each candidate is reachable, as ``foundation-node discover`` reports it); ``endpoint``
    syntax and name resolution; a raw ZMTP probe (wrong port, dead node); HELLO (version mismatch); the
    node's clock (skew above ``max_skew`` seconds); each advertised channel endpoint; seeds and peers as
    the node sees them (silent members).
    """
    say = progress or (lambda _t: None)
    report = DoctorReport(target=endpoint or config_file or strategy or "")
    if strategy:
        _diagnose_discovery(report, strategy, strategy_options, timeout, say)
    if config_file:
        say(f"checking config file {config_file}")
        from fabric.settings import load as load_settings

        try:
            settings = load_settings(config_file, environ={})
            report.add("ok", "config", f"{config_file} is valid (node {settings.node.name}, bind {settings.node.bind})")
            for seed in settings.seeds:
                try:
                    check_endpoint(seed)
                except ValueError as exc:
                    report.add("fail", "config", f"seed {exc}", "fix the seed address in the config file")
        except (SettingsError, ConfigError) as exc:
            report.add("fail", "config", f"invalid config: {exc}", "fix the field named above (docs/cli.md, docs/configuration.md)")
    if endpoint is None:
        return report
    say(f"checking {endpoint}")
    address, key_sep, _key = endpoint.partition("#")  # secure mode: ADDRESS#KEY (the client pins the key)
    try:
        scheme, host, port = check_endpoint(address, resolve=False)
    except ValueError as exc:
        report.add("fail", "endpoint", str(exc), "give the node's seed address, e.g. tcp://127.0.0.1:7946")
        return report
    if scheme == "tcp":
        assert port is not None
        try:
            check_endpoint(address)
        except ValueError as exc:
            report.add("fail", "resolve", f"unresolvable name: {exc}",
                       "check the host name for typos, DNS or /etc/hosts, or use an IP address")
            return report
        report.add("ok", "resolve", f"{host} resolves")
        say(f"probing {endpoint}")
        if not _explain_probe(report, "reachable", "membership endpoint", address, probe_zmtp(host, port, timeout=timeout),
                              "ROUTER", key_given=bool(key_sep)):
            return report
    say(f"saying HELLO to {endpoint}")
    client = AdminClient(endpoint, timeout=timeout)
    try:
        if key_sep:
            # Secure mode: a cluster HELLO needs a key the node trusts, which doctor does not hold; the
            # admin endpoint (any key on loopback) answers everything below.
            report.add("ok", "version", "secure mode: cluster HELLO skipped (it needs a trusted key); "
                       "checking through the admin endpoint")
            peer_name = "the node"
        else:
            try:
                peer = client.handshake()
            except AdminUnreachable as exc:
                if "version mismatch" in str(exc):
                    report.add("fail", "version", f"{exc}", "run the same fabric protocol version on every node and tool "
                               "(upgrade the older side)")
                else:
                    report.add("fail", "hello", str(exc), "check that the node is a foundation-node and not overloaded")
                return report
            report.add("ok", "version", f"HELLO accepted by {peer.name} ({peer.id[:8]}), protocol version {peer.version}")
            peer_name = peer.name
        try:
            t0 = wall_clock()
            hello = client.op("hello")
            t1 = wall_clock()
        except AdminUnsupported as exc:
            report.add("warn", "admin", str(exc), "start nodes with foundation-node start to get the admin service")
            return report
        except AdminError as exc:
            report.add("fail", "admin", str(exc))
            return report
        skew = hello["wall_ms"] / 1000 - (t0 + t1) / 2
        if abs(skew) > max_skew + (t1 - t0) / 2:
            report.add("fail", "clock", f"clock skew: {peer_name}'s clock is {abs(skew):.1f}s "
                       f"{'ahead of' if skew > 0 else 'behind'} this machine's",
                       "synchronise clocks with NTP (chrony or systemd-timesyncd) on every host")
        else:
            report.add("ok", "clock", f"clock within {max_skew:g}s of this machine ({skew * 1000:+.0f} ms)")
        status = client.op("status")
        _check_channels(report, status, timeout)
        _check_node_view(report, client, status, timeout, max_skew)
    finally:
        client.close()
    return report


def _check_channels(report: DoctorReport, status: Mapping[str, Any], timeout: float) -> None:
    for ch in status["channels"]:
        ep = status["endpoints"].get(ch["name"])
        if not ep:
            report.add("fail", "channels", f"channel {ch['name']} has no endpoint", "check the node's bind address")
            continue
        try:
            scheme, host, port = check_endpoint(ep)
        except ValueError as exc:
            report.add("fail", "channels", f"channel {ch['name']} advertises {ep}: {exc}",
                       "set `advertise` to an address other hosts can resolve and reach")
            continue
        if scheme != "tcp" or port is None:
            continue
        expect = EXPECTED_SOCKET.get(ch["kind"], "")
        result = probe_zmtp(host, port, expect=expect, timeout=timeout)
        if result.outcome != "zmtp" or _wrong_type(result.socket_type, expect):
            _explain_probe(report, "channels", f"{ch['name']} channel", f"{ep} ({ch['name']})", result, expect)
        else:
            report.add("ok", "channels", f"channel {ch['name']} ({ch['kind']}) reachable at {ep}")
    _check_security(report, status)


def _check_security(report: DoctorReport, status: Mapping[str, Any]) -> None:
    """Flag insecure mode (a non-loopback node without CURVE); say which mode the node runs in."""
    cfg = status.get("config", {})
    mode = cfg.get("security") or ("insecure" if cfg.get("insecure") else "development")
    if mode == "insecure":
        report.add("warn", "security", "the node accepts unauthenticated peers on a non-loopback address (insecure)",
                   "give it keys and a trust file (foundation-node keys generate DIR; start --keys DIR --trust PATH), "
                   "or bind to loopback; see docs/security.md")
    elif mode == "curve":
        report.add("ok", "security", "CURVE on every socket (secure mode)")
    else:
        report.add("ok", "security", "development mode: loopback only, no CURVE")


def _check_member_channels(report: DoctorReport, member: Mapping[str, Any], timeout: float) -> None:
    """Probe each channel endpoint a live member advertises. Unreachable ones are warnings: this host
    may sit outside the cluster's network while the members still reach each other."""
    bad = []
    for name, ep in sorted(member.get("endpoints", {}).items()):
        kind = (member.get("channels", {}).get(name) or ["", 0])[0]
        expect = EXPECTED_SOCKET.get(kind, "")
        try:
            _scheme, host, port = check_endpoint(ep)
        except ValueError as exc:
            bad.append(f"{name}: {exc}")
            continue
        if port is None or not expect:
            continue
        result = probe_zmtp(host, port, expect=expect, timeout=timeout)
        if result.outcome != "zmtp" or _wrong_type(result.socket_type, expect):
            bad.append(f"{name} at {ep}: {result.detail or result.outcome}")
    if bad:
        report.add("warn", "members", f"member {member['name']}: channel endpoints not reachable from here: " + "; ".join(bad),
                   "if this host should reach the cluster, check firewalls and the member's `advertise` address")
    else:
        report.add("ok", "members", f"member {member['name']}: every channel endpoint reachable from here")


def _check_node_view(report: DoctorReport, client: AdminClient, status: Mapping[str, Any], timeout: float, max_skew: float) -> None:
    for seed in status.get("seeds", []):
        if seed["linked"]:
            report.add("ok", "seeds", f"seed {seed['seed']} is a live member ({seed['peer']})")
        else:
            err = seed["last_error"] or "not a member yet"
            check = "version" if "version" in err.lower() else "seeds"
            report.add("fail", check, f"seed {seed['seed']} is not a live member: {err}",
                       "run doctor against that seed address to see why")
    pings = client.op("ping", wait=timeout + 2.0, timeout=timeout)
    members = {m["id"]: m for m in client.op("members")}
    for pid, result in pings.items():
        m = members.get(pid, {"name": pid[:8], "seed": ""})
        if "error" in result:
            detail = ""
            seed = m.get("seed") or ""
            if seed.startswith("tcp://"):
                try:
                    _s, host, port = check_endpoint(seed)
                    if port is not None:
                        probe = probe_zmtp(host, port, timeout=timeout)
                        detail = f"; its seed {seed}: {probe.detail or probe.outcome}"
                except ValueError:
                    pass
            report.add("fail", "members", f"dead node: member {m['name']} ({pid[:8]}) does not answer PING within "
                       f"{timeout:g}s ({result['error']}){detail}",
                       "restart that node or stop it cleanly (foundation-node leave); a hung process needs a restart")
        else:
            report.add("ok", "members", f"member {m['name']} answers PING in {result['rtt_ms']:.2f} ms")
            _check_member_channels(report, m, timeout)
    for m in members.values():
        if m["state"] == "left":
            report.add("ok", "members", f"member {m['name']} ({m['id'][:8]}) left the cluster")
        elif m["state"] == "down" and m["id"] not in pings:
            report.add("fail", "members", f"dead node: member {m['name']} ({m['id'][:8]}) is down ({m.get('reason', 'link closed')})",
                       "restart it if it should be running; it rejoins with a new incarnation")
        elif m["state"] == "suspect":
            report.add("warn", "members", f"member {m['name']} ({m['id'][:8]}) is suspect: its heartbeats are late",
                       "check that node's load and the network to it; it is declared down if this persists")


__all__ = [
    "EXPECTED_SOCKET",
    "DoctorReport",
    "Finding",
    "ProbeResult",
    "diagnose",
    "parse_zmtp",
    "probe_zmtp",
    "zmtp_greeting",
    "zmtp_ready",
]
