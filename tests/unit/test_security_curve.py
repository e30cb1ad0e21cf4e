"""Secure mode, piece by piece: SecurityConfig and the modes, self-certifying node ids, seeds with keys,
the HELLO/WELCOME key fields, and the ZeroMQ transport's CURVE sockets and per-message attribution."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import zmq.utils.z85

from fabric import ConfigError, InsecureBindError, Node, NodeConfig, SecurityConfig, wire
from fabric.errors import MalformedHeader
from fabric.node.security import NodeSecurity, parse_key, split_seed
from fabric.security import KeyPair, save_keypair
from fabric.transport.base import ChannelKind, ChannelSpec
from fabric.transport.memory import AsyncioScheduler, MemoryNetwork
from fabric.transport.zmq import CurveSettings, ZmqTransport
from fabric.wire import MsgType, RejectCode, Role


def keys_and_trust(tmp_path: Path, *names: str) -> dict[str, KeyPair]:
    pairs = {n: KeyPair.generate() for n in names}
    for n, kp in pairs.items():
        save_keypair(tmp_path / n, kp)
    (tmp_path / "trust.toml").write_text("".join(f'[[member]]\nkey = "{kp.public.decode()}"\n' for kp in pairs.values()))
    return pairs


def secure(tmp_path: Path, name: str, **extra: Any) -> NodeConfig:
    return NodeConfig.local(name=name, security=SecurityConfig(keys=str(tmp_path / name), trust=str(tmp_path / "trust.toml")),
                            **extra)


def test_security_config_validation_and_modes() -> None:
    with pytest.raises(ConfigError, match="trust_reload_interval"):
        SecurityConfig(trust_reload_interval=0)
    with pytest.raises(ConfigError, match="keys"):
        SecurityConfig(keys="")
    with pytest.raises(ConfigError, match="needs a trust file"):
        SecurityConfig(keys="/k").check_complete()
    with pytest.raises(ConfigError, match="needs the node's keys"):
        SecurityConfig(trust="/t").check_complete()
    assert NodeConfig().security_mode == "development"
    assert NodeConfig(bind="ipc:///tmp/x").security_mode == "development"
    assert NodeConfig(bind="tcp://10.1.2.3", insecure=True).security_mode == "insecure"
    assert NodeConfig(bind="tcp://127.0.0.1", insecure=True).security_mode == "development"
    with pytest.raises(InsecureBindError):
        NodeConfig(bind="tcp://10.1.2.3")
    # with keys any address is fine without the insecure flag, and the mode is curve
    cfg = NodeConfig(bind="tcp://0.0.0.0", security=SecurityConfig(keys="/k", trust="/t"))
    assert cfg.security_mode == "curve"
    with pytest.raises(ConfigError, match="inproc"):
        NodeConfig(bind="inproc://x", security=SecurityConfig(keys="/k", trust="/t"))


def test_node_id_is_derived_from_the_key_and_a_disagreeing_one_is_refused(tmp_path: Path) -> None:
    pairs = keys_and_trust(tmp_path, "a", "b")
    node = Node(secure(tmp_path, "a"))
    assert node.id == pairs["a"].node_id_text
    assert Node(secure(tmp_path, "a", node_id=pairs["a"].node_id_text)).id == node.id
    with pytest.raises(ConfigError, match="disagrees with the keys"):
        Node(secure(tmp_path, "a", node_id=pairs["b"].node_id_text))
    with pytest.raises(ConfigError, match="needs a trust file"):
        Node(NodeConfig.local(security=SecurityConfig(keys=str(tmp_path / "a"))))
    async def on_memory() -> None:
        with pytest.raises(ConfigError, match="ZeroMQ transport"):
            Node(secure(tmp_path, "a"), transport=MemoryNetwork(AsyncioScheduler(), seed=1).transport("a"))

    asyncio.run(on_memory())
    with pytest.raises(ConfigError, match="no such key file"):
        Node(NodeConfig.local(security=SecurityConfig(keys=str(tmp_path / "missing"), trust=str(tmp_path / "trust.toml"))))
    sec = NodeSecurity(secure(tmp_path, "a"))
    assert sec.id_of(pairs["b"].public) == pairs["b"].node_id and sec.id_of(b'"' * 40) is None and sec.id_of(b"x" * 39) is None
    assert sec.roles(pairs["b"].public) and not sec.roles(KeyPair.generate().public)


def test_seeds_carry_the_key_as_z85_or_hex() -> None:
    kp = KeyPair.generate()
    hexkey = zmq.utils.z85.decode(kp.public).hex()
    assert split_seed("tcp://h:1") == ("tcp://h:1", None)
    assert split_seed(f"tcp://h:1#{kp.public.decode()}") == ("tcp://h:1", kp.public)
    assert split_seed(f"tcp://h:1#{hexkey}") == ("tcp://h:1", kp.public)
    assert parse_key(hexkey.upper(), "x") == kp.public
    for bad in ("abc", "z" * 64, "\x00" * 40):
        with pytest.raises(ConfigError, match="#KEY"):
            split_seed(f"tcp://h:1#{bad}")


def test_hello_and_welcome_carry_the_key_and_certificate() -> None:
    kp = KeyPair.generate()
    src = kp.node_id
    h = wire.decode(wire.hello(src, role=Role.MEMBER, incarnation=1, public_key=kp.public, cert=b"\x01cert"))
    assert h.type == MsgType.HELLO and h.header["pk"] == kp.public and h.header["cr"] == b"\x01cert"
    w = wire.decode(wire.welcome(src, version=1, incarnation=1, public_key=kp.public))
    assert w.header["pk"] == kp.public and "cr" not in w.header
    assert "pk" not in wire.decode(wire.hello(src, role=Role.MEMBER, incarnation=1)).header  # development mode
    bad = wire.encode(MsgType.HELLO, {"s": src, "vn": 1, "vx": 1, "ro": 0, "in": 1, "pk": "text"})
    with pytest.raises(MalformedHeader):
        wire.decode(bad)
    assert int(RejectCode.UNTRUSTED) == 10


def test_transport_curve_sockets_attribute_every_message() -> None:
    server_keys, client_keys, stranger = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    spec = ChannelSpec("c", ChannelKind.CONTROL)
    bulk = ChannelSpec("b", ChannelKind.BULK)

    async def scenario() -> None:
        got: list[tuple[str, bytes | None, list[Any]]] = []
        allowed = {client_keys.public}
        server = ZmqTransport(curve=CurveSettings(server_keys.public, server_keys.secret or b"", default_domain="t/d",
                                                  policies={"t/d": lambda key: key in allowed}))
        client = ZmqTransport(curve=CurveSettings(client_keys.public, client_keys.secret or b""))
        intruder = ZmqTransport(curve=CurveSettings(stranger.public, stranger.secret or b""))
        arrived = asyncio.Event()

        def recv_into(t: ZmqTransport) -> Any:
            def receiver(channel: str, frames: list[Any], route: bytes | None, link: Any) -> None:
                got.append((channel, t.peer_key, [bytes(f) for f in frames]))
                arrived.set()
                if route is not None:
                    t.respond(channel, route, [b"pong"])
            return receiver

        endpoints = server.bind([spec, bulk], recv_into(server), b"S")
        client.bind([spec, bulk], recv_into(client), b"C", listen=False)
        intruder.bind([spec, bulk], recv_into(intruder), b"I", listen=False)
        try:
            with pytest.raises(ConfigError, match="public key"):
                client.connect("srv", endpoints)
            client.connect("srv", endpoints, server_key=server_keys.public)
            intruder.connect("srv", endpoints, server_key=server_keys.public)
            intruder.send("srv", "c", 0, [b"evil"])
            client.send("srv", "c", 0, [b"ping"])
            client.send("srv", "b", 0, [b"head", b"x" * 1000])
            async with asyncio.timeout(30):
                while len(got) < 3:
                    arrived.clear()
                    await arrived.wait()
            by_payload = {tuple(frames): key for _ch, key, frames in got}
            assert by_payload[(b"ping",)] == client_keys.public  # bound ROUTER: the ZAP User-Id
            assert by_payload[(b"head", b"x" * 1000)] == client_keys.public  # bound PULL, zero-copy path
            assert by_payload[(b"pong",)] == server_keys.public  # connecting DEALER: the pinned key
            assert (b"evil",) not in by_payload  # refused by the policy
            assert server.stats()["curve"] is True
            # reset_inbound closes the accepted connections; the client reconnects and is heard again
            assert await server.reset_inbound() == 2
            got.clear()
            async with asyncio.timeout(30):
                while not any(frames == [b"again"] for _c, _k, frames in got):
                    client.send("srv", "c", 0, [b"again"])
                    await asyncio.sleep(0.1)
            assert server.stats()["inbound_resets"] == 1
        finally:
            for t in (client, intruder, server):
                await t.close()

    asyncio.run(scenario())


def test_insecure_mode_warns_on_start_and_health_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> dict[str, Any]:
        node = Node(NodeConfig.local(name="ins", bind="tcp://0.0.0.0", insecure=True))
        async with node:
            return node.health() | {"stats": node.stats()["security"]}

    with caplog.at_level(logging.WARNING, logger="fabric.node"):
        health = asyncio.run(scenario())
    assert health["security"] == "insecure" and health["stats"]["mode"] == "insecure"
    assert any("INSECURE" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_development_mode_is_unchanged() -> None:
    async def scenario() -> None:
        a, b = Node(NodeConfig.local(name="a")), Node(NodeConfig.local(name="b"))
        async with a, b:
            assert a.health()["security"] == "development"
            info = await b.connect(a.seed)
            assert info.public_key is None and "fabric.pk" not in info.meta
            assert a.stats()["security"]["forged_source"] == 0
            assert a.stats()["transport"]["curve"] is False

    asyncio.run(scenario())


def test_reload_revokes_on_the_loop_and_an_invalid_file_keeps_the_last_good_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os

    pairs = keys_and_trust(tmp_path, "a", "b")
    trust = tmp_path / "trust.toml"
    sec = NodeSecurity(secure(tmp_path, "a"))
    b = pairs["b"].public

    def rewrite(text: str) -> None:
        trust.write_text(text)
        st = trust.stat()
        os.utime(trust, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a distinct mtime on coarse clocks

    async def scenario() -> list[frozenset[bytes]]:
        seen: list[frozenset[bytes]] = []
        sec.watch(asyncio.get_running_loop(), seen.append)
        assert sec.roles(b)  # trusted as a member
        rewrite(trust.read_text() + f'[revoked]\nkeys = ["{b.decode()}"]\n')
        assert await asyncio.to_thread(sec.reload)  # reloaded on another thread: the callback hops to the loop
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.01)
        assert not sec.roles(b)
        rewrite("[[member]\nbroken")
        with pytest.raises(ConfigError):
            sec.reload()
        assert sec.roles(pairs["a"].public)  # the last good file stays in force
        stop = asyncio.Event()
        task = asyncio.create_task(sec.reload_loop(0.01, lambda: not stop.is_set(), "a"))
        async with asyncio.timeout(10):
            while not any("trust file not reloaded" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.01)
        stop.set()
        await task
        return seen

    with caplog.at_level(logging.WARNING, logger="fabric.node"):
        seen = asyncio.run(scenario())
    assert seen == [frozenset({b})]
    assert sum("trust file not reloaded" in r.getMessage() for r in caplog.records) == 1  # once per problem
