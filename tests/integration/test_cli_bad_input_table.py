"""A careless operator's inputs to ``foundation-node``, as real processes (issue 14, defect 7).

Each row is one command line (plus environment or a TOML file). Every one must fail with a non-zero exit
code and one short line on stderr, and never print a Python traceback. The issue's runs that did print
one: ``send --channel nosuch`` (KeyError), an integer too large for msgpack (TypeError), a 60,000-deep
JSON argument and a 5,000-deep TOML array (RecursionError); ``call --to ''`` exited 0 by calling the node
itself; ``start`` accepted ``call_timeout=nan`` / ``1e999``, 10 MB of metadata and ``FOUNDATION_METADATA__=x``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.test_cli_harness import NodeProcess, run_cli
from tests.support import python_env


@dataclass(frozen=True)
class Row:
    """One bad input: ``args`` (``{seed}`` and ``{name}`` are the running node's; ``{file}`` the TOML
    file holding ``toml``), extra ``env``, and a ``needle`` the error line must contain."""

    label: str
    args: tuple[str, ...]
    needle: str
    env: dict[str, str] = field(default_factory=dict)
    toml: str | None = None


DEEP_JSON = "[" * 60000 + "]" * 60000
DEEP_OBJECT = '{"a":' * 20000 + "1" + "}" * 20000
HUGE_INT = "9" * 40
ROWS = [
    # operator commands against a running node
    Row("send to an unknown channel", ("send", "--node", "{seed}", "--channel", "nosuch", "hi"), "unknown channel 'nosuch'"),
    Row("send on the reserved channel", ("send", "--node", "{seed}", "--channel", "membership", "hi"), "membership"),
    Row("send --to on an unknown channel", ("send", "--node", "{seed}", "--to", "{name}", "--channel", "nosuch", "x"), "node itself"),
    Row("call on an unknown channel", ("call", "--node", "{seed}", "--channel", "nosuch", "svc"), "unknown channel 'nosuch'"),
    Row("send a huge integer", ("send", "--node", "{seed}", HUGE_INT), "64 bits"),
    Row("send a huge negative integer", ("send", "--node", "{seed}", "--", "-" + HUGE_INT), "64 bits"),
    Row("call with a huge integer", ("call", "--node", "{seed}", "fabric.admin", HUGE_INT), "64 bits"),
    Row("huge integer inside a list", ("send", "--node", "{seed}", f"[1, [2, {HUGE_INT}]]"), "64 bits"),
    Row("send 60,000-deep JSON", ("send", "--node", "{seed}", DEEP_JSON), "nested"),
    Row("call with 60,000-deep JSON", ("call", "--node", "{seed}", "svc", DEEP_JSON), "nested"),
    Row("send 20,000-deep JSON object", ("send", "--node", "{seed}", DEEP_OBJECT), "nested"),
    Row("config set 60,000-deep JSON", ("config", "set", "--node", "{seed}", "a.b", DEEP_JSON), "nested"),
    Row("send --to empty", ("send", "--node", "{seed}", "--to", "", "hi"), "empty name"),
    Row("call --to empty", ("call", "--node", "{seed}", "--to", "", "svc"), "empty name"),
    Row("send --to unknown member", ("send", "--node", "{seed}", "--to", "nobody", "hi"), "unknown member 'nobody'"),
    Row("call --to unknown member", ("call", "--node", "{seed}", "--to", "nobody", "svc"), "unknown member 'nobody'"),
    Row("call --to the node itself", ("call", "--node", "{seed}", "--to", "{name}", "svc"), "node itself"),
    Row("call an unknown service", ("call", "--node", "{seed}", "no.such.service"), "no service 'no.such.service'"),
    Row("empty --node", ("members", "--node", ""), "no node given"),
    Row("endpoint without scheme", ("members", "--node", "127.0.0.1:7946"), "is not an endpoint"),
    Row("endpoint with port 0", ("status", "--node", "tcp://127.0.0.1:0"), "port in 1..65535"),
    Row("ipc endpoint without path", ("status", "--node", "ipc://"), "is not an endpoint"),
    Row("unresolvable endpoint", ("status", "--node", "tcp://no-such-host.invalid:7946"), "cannot resolve host"),
    # start: durations that are not finite or not positive
    Row("call_timeout=nan", ("start", "--set", "call_timeout=nan"), "call_timeout"),
    Row("call_timeout=inf", ("start", "--set", "call_timeout=inf"), "call_timeout"),
    Row("call_timeout=1e999", ("start", "--set", "call_timeout=1e999"), "call_timeout"),
    Row("call_timeout=-1", ("start", "--set", "call_timeout=-1"), "call_timeout"),
    Row("connect_timeout=0", ("start", "--set", "connect_timeout=0"), "connect_timeout"),
    Row("topology_cooldown negative", ("start", "--set", "topology_cooldown=-5"), "topology_cooldown"),
    Row("membership.suspect_timeout=nan", ("start", "--set", "membership.suspect_timeout=nan"), "suspect_timeout"),
    Row("membership.heartbeat_interval<0", ("start", "--set", "membership.heartbeat_interval=-1"), "heartbeat_interval"),
    Row("hyparview shuffle_interval=inf", ("start", "--set", "membership.hyparview.shuffle_interval=inf"), "shuffle_interval"),
    Row("channel send_timeout=nan", ("start", "--set", "channels.data.send_timeout=nan"), "send_timeout"),
    Row("--member-expiry nan", ("start", "--member-expiry", "nan"), "member_expiry"),
    Row("env duration inf", ("start",), "FOUNDATION_CALL_TIMEOUT", env={"FOUNDATION_CALL_TIMEOUT": "inf"}),
    # start: metadata and environment keys
    Row("10 MB of metadata (TOML)", ("start", "--config", "{file}"), "metadata", toml='[metadata]\nblob = "' + "x" * 10_000_000 + '"\n'),
    Row("100 KB --meta value", ("start", "--meta", "k=" + "x" * 100_000), "metadata"),
    Row("empty metadata key from env", ("start",), "empty key", env={"FOUNDATION_METADATA__": "x"}),
    Row("empty setting name from env", ("start",), "empty setting name", env={"FOUNDATION_": "x"}),
    Row("empty path part from env", ("start",), "FOUNDATION___X", env={"FOUNDATION___X": "1"}),
    Row("a table set to a value (env)", ("start",), "is a table", env={"FOUNDATION_MEMBERSHIP": "3"}),
    Row("empty --meta key", ("start", "--meta", "=x"), "KEY=VALUE"),
    # start: deep or broken files
    Row("5,000-deep TOML array", ("start", "--config", "{file}"), "nested too deeply", toml="a = " + "[" * 5000 + "]" * 5000 + "\n"),
    Row("deep TOML tables", ("start", "--config", "{file}"), "nested more than", toml="x" + ".y" * 200 + " = 1\n"),
    Row("TOML that is not TOML", ("start", "--config", "{file}"), "invalid TOML", toml="name = [unclosed\n"),
    Row("TOML that is not UTF-8", ("start", "--config", "{file}"), "not UTF-8", toml="\udcff"),
    # start: endpoints
    Row("seed without scheme", ("start", "--seed", "localhost:7946"), "seeds"),
    Row("seed with port out of range", ("start", "--seed", "tcp://127.0.0.1:99999"), "seeds"),
    Row("empty seed", ("start", "--seed", ""), "seeds"),
    Row("seeds of the wrong type", ("start", "--config", "{file}"), "seeds", toml="seeds = 7\n"),
    Row("bind with a bad scheme", ("start", "--bind", "http://127.0.0.1"), "bind"),
    Row("http_port out of range", ("start", "--set", "http_port=-1"), "http_port"),
    # start: unknown keys and wrong types
    Row("unknown --set key", ("start", "--set", "colour=1"), "colour: unknown setting"),
    Row("unknown nested key", ("start", "--set", "membership.warp=1"), "membership.warp: unknown setting"),
    Row("unknown channel in a key", ("start", "--set", "channels.nosuch.parallelism=2"), "nosuch"),
    Row("--set without =", ("start", "--set", "port"), "KEY=VALUE"),
    Row("port is not a number", ("start", "--set", "port=abc"), "port: expected an integer"),
    Row("a huge integer setting", ("start", "--set", "port=" + "9" * 5000), "port: expected an integer"),
    Row("insecure is not a bool", ("start", "--set", "insecure=maybe"), "insecure: expected true or false"),
    Row("unknown overlay", ("start", "--set", "overlay=ring"), "overlay"),
    Row("node_id not a UUID", ("start", "--set", "node_id=me"), "node_id"),
    Row("channel kind unknown", ("start", "--set", "channels.data.kind=teleport"), "channels.data.kind"),
    Row("unknown preset", ("start", "--set", "preset=moon"), "preset"),
    # start: discovery specs
    Row("--discovery dns: (empty)", ("start", "--discovery", "dns:"), "nothing after ':'"),
    Row("--discovery unknown", ("start", "--discovery", "carrier-pigeon"), "unknown discovery strategy"),
    Row("--discovery :x", ("start", "--discovery", ":x"), "no strategy name"),
    Row("--discovery mdns bad service", ("start", "--discovery", "mdns:x"), "service_type"),
    Row("--discovery-option without =", ("start", "--discovery", "gossip", "--discovery-option", "ttl"), "KEY=VALUE"),
    Row("--discovery-option unknown", ("start", "--discovery", "gossip", "--discovery-option", "warp=1"), "discovery.warp"),
    Row("--discovery-option wrong type", ("start", "--discovery", "gossip", "--discovery-option", "port=many"), "discovery.port"),
    Row("discovery option without strategy", ("start", "--discovery-option", "port=1"), "no strategy"),
    Row("deep JSON discovery option", ("start", "--discovery", "static", "--discovery-option", "seeds=" + DEEP_JSON[:2000]), "nested"),
    Row("discover with deep -o", ("discover", "--strategy", "static", "-o", "seeds=" + DEEP_JSON[:2000]), "nested"),
    Row("discover k8s without a selector", ("discover", "--strategy", "k8s"), "kubernetes"),
]


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    n = NodeProcess("--name", "careless", "--preset", "local")
    try:
        yield n
    finally:
        n.stop()


def test_the_table_covers_the_issue() -> None:
    assert len(ROWS) >= 40
    assert len({r.label for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_bad_input_is_one_line_and_non_zero(row: Row, node: NodeProcess, tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    if row.toml is not None:
        file.write_bytes(row.toml.encode("utf-8", "surrogateescape"))
    args = [a.replace("{seed}", node.seed).replace("{name}", node.name).replace("{file}", str(file)) for a in row.args]
    env = python_env()
    env.update(row.env)
    code, out, err = run_cli(*args, env=env, timeout=60)
    assert code != 0, (row.label, out, err)
    assert "Traceback" not in err and "Traceback" not in out, (row.label, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(err) < 2000, (row.label, err[:3000])
    assert row.needle in err, (row.label, err)
