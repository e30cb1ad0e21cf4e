"""Entry point of the ``foundation-node`` command.

The CLI parses, calls the library (:mod:`fabric.admin`, :mod:`fabric.settings`,
:mod:`fabric.topology_view`) and renders; what composes a running node (:mod:`.runner`) and ``doctor``
(:mod:`.doctor`) live beside it. Every failure is one line on stderr, never a traceback. Exit codes
(docs/cli.md):

====  ===========================================================================================
0     success (``start``: stopped cleanly by SIGTERM/SIGINT or ``leave``)
1     the operation failed (remote error, unhealthy, doctor found a problem, wait timed out)
2     usage error: unknown option, bad flag value, missing ``--node``
3     configuration invalid (bad TOML, unknown key, a value the config rejects)
4     the node cannot be reached (bad or unresolvable endpoint, nothing answers, version mismatch)
5     ``start`` could not start the node (address in use, bind refused)
6     the node does not offer that command (no admin service, or e.g. no Foundation config)
130   interrupted (Ctrl-C) outside ``--watch``
====  ===========================================================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fabric.admin import AdminClient, AdminRemoteError, AdminUnreachable, AdminUnsupported, NodeStartError
from fabric.demo import run_demo
from fabric.errors import ConfigError, FabricError
from fabric.settings import (
    PRESETS,
    SettingsError,
    discovery_config,
    load,
    parse_options,
    parse_strategy,
)
from fabric.topology_view import Graph, render_html, to_dot, to_svg, to_text

from .doctor import diagnose
from .keys import check_node_security, keys_group
from .runner import RunningNode, run_node

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNREACHABLE = 4
EXIT_START = 5
EXIT_UNSUPPORTED = 6
EXIT_INTERRUPTED = 130


class Failure(click.ClickException):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance


class OneLineUsage(click.UsageError):
    """A usage error shown as one line (what is wrong, and where help is), not click's three."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=True)


class _Group(click.Group):
    """Turns a subcommand's usage errors (bad flag value, unknown option) into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsage:
            raise
        except click.UsageError as exc:
            raise OneLineUsage(exc.format_message(), ctx=exc.ctx) from None


def _progress(text: str) -> None:
    """Progress lines go to stderr, so stdout stays parseable."""
    click.echo(f"... {text}", err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Map library errors to one-line messages and exit codes."""
    try:
        yield
    except AdminUnreachable as exc:
        raise Failure(str(exc), EXIT_UNREACHABLE) from None
    except AdminUnsupported as exc:
        raise Failure(str(exc), EXIT_UNSUPPORTED) from None
    except AdminRemoteError as exc:
        raise Failure(str(exc), EXIT_FAILED) from None
    except (SettingsError, ConfigError) as exc:
        raise Failure(f"invalid configuration: {exc}", EXIT_CONFIG) from None
    except NodeStartError as exc:
        raise Failure(str(exc), EXIT_START) from None
    except KeyboardInterrupt:
        raise Failure("interrupted", EXIT_INTERRUPTED) from None
    except (FabricError, OSError, TimeoutError) as exc:
        raise Failure(f"{type(exc).__name__}: {exc}", EXIT_FAILED) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foundation-fabric")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Run and operate Foundation fabric nodes."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- shared options ----------------------------------------------------------------------------------


def _remember_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta["operator_key"] = value


def operator_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--node`` (or FOUNDATION_NODE), ``--timeout`` and ``--key`` (or FOUNDATION_KEY) on every command
    that talks to a node."""
    fn = click.option(
        "--key", "operator_key", envvar="FOUNDATION_KEY", metavar="DIR", expose_value=False, callback=_remember_key,
        help="Key directory of an operator key (secure mode; needed for commands that change the node). "
             "Without it: an ephemeral key, read-only commands on a loopback admin endpoint [env FOUNDATION_KEY].",
    )(fn)
    fn = click.option(
        "--timeout", type=click.FloatRange(0.1, 600), default=3.0, show_default=True, help="Seconds to wait for the node."
    )(fn)
    fn = click.option(
        "--node", "node", envvar="FOUNDATION_NODE", metavar="ENDPOINT",
        help="The node's seed (membership) address or admin address (ready line's admin=), e.g. "
             "tcp://127.0.0.1:7946; secure mode: append #KEY, the node's public key [env FOUNDATION_NODE].",
    )(fn)
    return fn


@contextmanager
def _admin(node: str | None, timeout: float, *, quiet: bool = False) -> Iterator[AdminClient]:
    if not node:
        raise Failure("no node given: pass --node tcp://HOST:PORT or set FOUNDATION_NODE", EXIT_USAGE)
    with _errors():
        key_dir = click.get_current_context().meta.get("operator_key")
        client = AdminClient(node, timeout=timeout, progress=None if quiet or not sys.stderr.isatty() else _progress,
                             key_dir=key_dir)
        try:
            client.open()
            yield client
        finally:
            client.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data.hex()
    return repr(value)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=_json_default)


MAX_PAYLOAD_DEPTH = 64
"""Deepest nesting a command-line payload may have (msgpack and the receiving node refuse deeper)."""


def _parse_value(text: str, raw: bool, what: str = "payload") -> Any:
    """Command-line payloads: JSON when it parses (``42``, ``{"a": 1}``), else the text; ``--raw``: bytes.

    Raises Failure (usage) for JSON nested deeper than :data:`MAX_PAYLOAD_DEPTH` or holding an integer
    msgpack cannot carry (outside -2**63 .. 2**64-1)."""
    if raw:
        return text.encode()
    if text[:1] not in "[{-0123456789tfn\"" or not text:
        return text  # not JSON: the text itself
    depth = max_depth = 0
    in_string = escaped = False
    for ch in text:  # cheap bound before json.loads, which recurses once per level
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in "]}":
            depth -= 1
    if max_depth > MAX_PAYLOAD_DEPTH:
        raise Failure(f"{what}: JSON nested {max_depth} levels deep; at most {MAX_PAYLOAD_DEPTH}", EXIT_USAGE)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError):
        return text
    _check_msgpackable(value, what)
    return value


def _check_msgpackable(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -(2**63) <= item < 2**64:
            raise Failure(f"{what}: integer {str(item)[:20]}... does not fit in 64 bits (msgpack's limit)", EXIT_USAGE)
        if isinstance(item, float) and not math.isfinite(item):
            continue  # msgpack carries inf and nan
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# -- start -------------------------------------------------------------------------------------------


@cli.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), envvar="FOUNDATION_CONFIG",
              help="TOML settings file [env FOUNDATION_CONFIG].")
@click.option("--preset", type=click.Choice(PRESETS), default=None, help="Base settings (default lan).")
@click.option("--name", default=None, help="Human name of the node.")
@click.option("--node-id", default=None, help="Fixed node id (UUID); default a new one per start.")
@click.option("--bind", default=None, help="tcp://HOST, ipc:///DIR or inproc://PREFIX.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Base port (channel i binds port+i; 0 ephemeral).")
@click.option("--advertise", default=None, help="Host peers should dial (wildcard binds, NAT).")
@click.option("--insecure", is_flag=True, default=None, help="Allow non-loopback binds without security.")
@click.option("--keys", "keys_dir", default=None, metavar="DIR", help="Run CURVE with this key directory (keys generate).")
@click.option("--trust", "trust_file", default=None, metavar="PATH", help="Trust file: who may join (keys trust).")
@click.option("--seed", "seeds", multiple=True, metavar="ENDPOINT", help="Membership endpoint to join through (repeatable).")
@click.option("--discovery", default=None, metavar="SPEC",
              help="Join through a discovery strategy: NAME or NAME:ARG, e.g. dns:nodes.example, mdns, gossip, "
                   "static:tcp://HOST:PORT, consul:SERVICE, k8s:LABEL_SELECTOR.")
@click.option("--discovery-option", "discovery_option", multiple=True, metavar="KEY=VALUE",
              help="An option of the discovery strategy (repeatable; as `discover -o`).")
@click.option("--member-expiry", type=float, default=None, metavar="SECONDS",
              help="Seconds a down or left member stays listed (default 300).")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None, help="Serve /metrics and /topology.json (0: any free port).")
@click.option("--http-host", default=None, help="HTTP endpoint address (default 127.0.0.1).")
@click.option("--admin-host", default=None, help="Admin endpoint address (default 127.0.0.1; see docs/security.md).")
@click.option("--admin-port", type=click.IntRange(0, 65535), default=None, help="Admin endpoint port (default 0: any free port).")
@click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE", help="Metadata carried in HELLO (repeatable).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Any setting, e.g. transport.linger_ms=100.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def start(config_file: str | None, log_level: str, overrides: tuple[str, ...], **flags: Any) -> None:
    """Run a node in the foreground until SIGTERM/SIGINT or `leave` (it then says BYE and exits 0).

    The node joins the cluster through --seed endpoints and/or a --discovery strategy (Node.join) and
    adopts the cluster's overlay. Logs go to stderr; one line `ready name=... id=... seed=... http=... admin=...`
    goes to stdout once the node is bound. Settings: TOML file < FOUNDATION_* environment < flags; any
    field of the node's configuration is a key (`--set membership.suspect_timeout=2`).
    """
    logging.getLogger().setLevel(getattr(logging, log_level.upper()))
    keys_dir, trust_file = flags.pop("keys_dir"), flags.pop("trust_file")
    with _errors():
        if keys_dir is not None or trust_file is not None:  # NodeConfig.security.keys / .trust (docs/security.md)
            check_node_security(keys_dir, trust_file, pair=False)
            flags.update({f"security.{k}": v for k, v in (("keys", keys_dir), ("trust", trust_file)) if v is not None})
        settings = load(config_file, flags={**flags, "set": overrides})
        security = getattr(settings.node, "security", None)
        if security is not None:  # set from a file or the environment: the same checks, before anything binds
            check_node_security(security.keys, security.trust)

    def ready(running: RunningNode) -> None:
        node = running.node
        admin = running.admin_endpoint.endpoint if running.admin_endpoint is not None else None
        click.echo(f"ready name={node.name} id={node.id} seed={node.join_address} http={running.http_url or '-'} admin={admin or '-'}")
        sys.stdout.flush()

    log = logging.getLogger("foundation-node")
    with _errors():
        why = asyncio.run(run_node(settings, ready=ready, progress=lambda t: log.info("%s", t)))
    log.info("stopped (%s)", why)


# -- operator commands --------------------------------------------------------------------------------


def _members_table(members: list[dict[str, Any]]) -> str:
    rows = [("NAME", "STATE", "ID", "INCARNATION", "SEED")]
    for m in members:
        state = m["state"] + (f" ({m['reason']})" if m.get("reason") else "")
        rows.append((m["name"] + (" *" if m["self"] else ""), state, m["id"][:8], str(m["incarnation"]), m["seed"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@cli.command()
@operator_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C (or --count refreshes).")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True, help="Seconds between refreshes.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many refreshes.")
@click.option("--wait", "wait_for", type=click.IntRange(1), default=None, metavar="N", help="First wait until N members are alive.")
@click.option("--wait-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True)
def members(node: str | None, timeout: float, as_json: bool, watch: bool, interval: float, count: int | None,
            wait_for: int | None, wait_timeout: float) -> None:
    """The node itself (marked *) and its peers, with state."""
    with _admin(node, timeout) as admin, _errors():
        if wait_for:
            admin.wait_members(wait_for, timeout=wait_timeout,
                               progress=lambda up, want: _progress(f"waiting for members: {up}/{want} alive"))
        rounds = count if watch else 1
        try:
            for i, view in enumerate(admin.watch_members(interval=interval, count=rounds)):
                if as_json:
                    click.echo(json.dumps(view, sort_keys=True, default=_json_default))
                    continue
                if watch and sys.stdout.isatty():
                    click.clear()
                if watch:
                    click.echo(f"# {time.strftime('%H:%M:%S')} refresh {i + 1}")
                click.echo(_members_table(view))
        except KeyboardInterrupt:
            if not watch:
                raise
            return


@cli.command()
@operator_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(node: str | None, timeout: float, as_json: bool) -> None:
    """Identity, endpoints, uptime, seeds and counts of one node."""
    with _admin(node, timeout) as admin, _errors():
        st = admin.op("status")
    if as_json:
        click.echo(_dump(st))
        return
    click.echo(f"node      {st['name']} ({st['id']}) incarnation {st['incarnation']}")
    click.echo(f"state     {st['state']}, up {st['uptime_s']:.1f}s, version {st['version']}, protocol {st['protocol'][0]}..{st['protocol'][1]}")
    click.echo(f"overlay   {st['overlay']}; {st['peers']} peers, {st['clients']} clients")
    click.echo(f"http      {st['http'] or '-'}")
    for ch in st["channels"]:
        click.echo(f"channel   {ch['name']:<14} {ch['kind']:<10} x{ch['parallelism']:<3} {st['endpoints'].get(ch['name'], '-')}")
    for s in st["seeds"]:
        state = f"linked to {s['peer']}" if s["linked"] else f"NOT linked ({s['last_error'] or 'trying'})"
        click.echo(f"seed      {s['seed']}: {state}")


@cli.command()
@operator_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def health(node: str | None, timeout: float, as_json: bool) -> None:
    """Health checks of one node; exit 1 when one fails."""
    with _admin(node, timeout) as admin, _errors():
        report = admin.op("health", wait=timeout + 2)
    if as_json:
        click.echo(_dump(report))
    else:
        for c in report["checks"]:
            click.echo(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']:<10} {c['detail']}")
        click.echo(f"{report['name']}: {'healthy' if report['ok'] else 'UNHEALTHY'}")
    if not report["ok"]:
        raise Failure(f"{report['name']} is unhealthy", EXIT_FAILED)


@cli.command()
@operator_options
@click.argument("payload")
@click.option("--to", "to", metavar="MEMBER", help="Have the node send to this member (name or id); default: to the node itself.")
@click.option("--channel", default="coordination", show_default=True, help="A control or bulk channel.")
@click.option("--partition-key", "key", default=None, help="Partition key (picks the lane).")
@click.option("--raw", is_flag=True, help="Send PAYLOAD as raw bytes instead of JSON/text.")
def send(node: str | None, timeout: float, payload: str, to: str | None, channel: str, key: str | None, raw: bool) -> None:
    """Send a one-way message. PAYLOAD is JSON when it parses, else text."""
    value = _parse_value(payload, raw)
    with _admin(node, timeout) as admin, _errors():
        if to is not None:  # an empty --to is an error (the node says so), not "the node itself"
            result = admin.op("send", to=to, payload=value, channel=channel, key=key)
            click.echo(f"sent to {result['to']} on {result['channel']}" + ("" if result["queued"] else " (dropped: queue full)"))
        else:
            ok = admin.send(value, channel=channel, key=key)
            click.echo(f"sent to {admin.peer.name if admin.peer else node} on {channel}" + ("" if ok else " (dropped: queue full)"))


@cli.command()
@operator_options
@click.argument("service")
@click.argument("request", required=False, default=None)
@click.option("--to", "to", metavar="MEMBER", help="Have the node call this member; default: call the node itself.")
@click.option("--raw", is_flag=True, help="Send REQUEST as raw bytes.")
@click.option("--channel", default="coordination", show_default=True)
def call(node: str | None, timeout: float, service: str, request: str | None, to: str | None, raw: bool, channel: str) -> None:
    """Call SERVICE with REQUEST (JSON when it parses, else text) and print the reply as JSON."""
    value: Any = b"" if request is None else _parse_value(request, raw, "request")
    with _admin(node, timeout) as admin, _errors():
        if to is not None:
            result = admin.op("call", wait=timeout + 2, to=to, service=service, request=value, timeout=timeout, channel=channel)
            reply = result["reply"]
        else:
            reply = admin.call(service, value, timeout=timeout, channel=channel)
    click.echo(json.dumps(reply, sort_keys=True, default=_json_default))


@cli.command()
@operator_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot", "svg", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout.")
@click.option("--poll-ms", type=click.IntRange(100), default=1000, show_default=True, help="html: refresh period.")
@click.option("--switch", "switch_to", type=click.Choice(["full-mesh", "hyparview", "client-server", "static"]), default=None,
              help="Switch the whole cluster to this overlay, live, before showing it.")
@click.option("--expect", "expected", default=None, metavar="OVERLAY",
              help="With --switch: only if the current overlay is this one (compare-and-set).")
def topology(node: str | None, timeout: float, fmt: str, output: str | None, poll_ms: int, switch_to: str | None,
             expected: str | None) -> None:
    """The overlay and its links: text, json, dot, svg, or a live html page (polls the node's /topology.json).

    `--switch NEW [--expect CURRENT]` first switches the cluster's overlay live (no restart)."""
    if switch_to is not None:
        with _admin(node, timeout) as admin, _errors():
            state = admin.op("switch", new=switch_to, expected=expected, wait=timeout + 2)
        click.echo(f"switched to {state['overlay']} (epoch {state['epoch']})", err=True)
    with _admin(node, timeout) as admin, _errors():
        topo = admin.op("topology", wait=timeout + 2)
        http = admin.op("status")["http"] if fmt == "html" else None
    if fmt == "html" and not http:
        raise Failure("the live page polls the node's HTTP endpoint: restart the node with --http-port", EXIT_UNSUPPORTED)
    graph = Graph.from_topology(topo)
    text = {
        "text": lambda: to_text(graph),
        "json": lambda: _dump(topo) + "\n",
        "dot": lambda: to_dot(graph),
        "svg": lambda: to_svg(graph),
        "html": lambda: render_html(f"{http}/topology.json", poll_ms=poll_ms),
    }[fmt]()
    if output:
        with _errors():
            Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@operator_options
@click.option("--json", "as_json", is_flag=True, help="The raw stats() counters as JSON instead of Prometheus text.")
def metrics(node: str | None, timeout: float, as_json: bool) -> None:
    """The node's metrics in Prometheus text format (what /metrics serves)."""
    with _admin(node, timeout) as admin, _errors():
        out = admin.op("stats") if as_json else admin.op("metrics")
    click.echo(_dump(out) if as_json else out, nl=as_json)


@cli.command()
@operator_options
def leave(node: str | None, timeout: float) -> None:
    """Ask the node to leave: it says BYE to its peers and its process exits 0."""
    with _admin(node, timeout) as admin, _errors():
        result = admin.op("leave")
    click.echo(f"{result['name']} ({result['id'][:8]}) is leaving")


@cli.group("config", cls=_Group)
def config_group() -> None:
    """The node's Foundation configuration (foundation.Config): get, set, watch."""


def _path(text: str | None) -> list[str]:
    return [p for p in (text or "").split(".") if p]


@config_group.command("get")
@operator_options
@click.argument("path", required=False)
def config_get(node: str | None, timeout: float, path: str | None) -> None:
    """Print the value at PATH (dotted, e.g. ai.provider), or everything, as JSON."""
    with _admin(node, timeout) as admin, _errors():
        click.echo(_dump(admin.op("config.get", path=_path(path))))


@config_group.command("set")
@operator_options
@click.argument("path")
@click.argument("value")
def config_set(node: str | None, timeout: float, path: str, value: str) -> None:
    """Set PATH to VALUE (JSON when it parses, else text); only runtime-updatable paths are accepted."""
    with _admin(node, timeout) as admin, _errors():
        result = admin.op("config.set", path=_path(path), value=_parse_value(value, False, "value"))
    click.echo(f"{'.'.join(result['path'])} = {json.dumps(result['value'], default=_json_default)}")


@config_group.command("watch")
@operator_options
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many changes.")
def config_watch(node: str | None, timeout: float, count: int | None) -> None:
    """Print configuration changes as they happen, one JSON line each, until Ctrl-C or --count."""
    with _admin(node, timeout) as admin, _errors():
        try:
            for change in admin.watch_config(count=count, poll=2.0):
                click.echo(json.dumps(change, sort_keys=True, default=_json_default))
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


@cli.command()
@click.option("--node", "node", envvar="FOUNDATION_NODE", metavar="ENDPOINT", help="The node to check [env FOUNDATION_NODE].")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), help="Also validate this TOML settings file.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=2.0, show_default=True, help="Seconds per probe.")
@click.option("--max-skew", type=click.FloatRange(0.0), default=1.0, show_default=True, help="Tolerated clock skew in seconds.")
@click.option("--strategy", default=None, metavar="SPEC", help="Also check what this discovery strategy finds (as `discover`).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Discovery strategy option (as `discover`).")
@click.option("--json", "as_json", is_flag=True)
def doctor(node: str | None, config_file: str | None, timeout: float, max_skew: float, strategy: str | None,
           options: tuple[str, ...], as_json: bool) -> None:
    """Check a node, a config file and/or a discovery strategy: what is wrong and how to fix it.

    Exit 1 if anything failed."""
    if not node and not config_file and not strategy:
        raise Failure("nothing to check: pass --node ENDPOINT, --config FILE and/or --strategy NAME", EXIT_USAGE)
    with _errors():
        name, strategy_config = _strategy(strategy, options) if strategy else (None, None)
        report = diagnose(node, config_file=config_file, timeout=timeout, max_skew=max_skew,
                          progress=_progress if sys.stderr.isatty() else None,
                          strategy=name, strategy_options=strategy_config)
    if as_json:
        click.echo(_dump([f.__dict__ for f in report.findings]))
    else:
        for f in report.findings:
            mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[f.level]
            click.echo(f"{mark}  {f.check:<10} {f.message}")
            if f.fix and f.level != "ok":
                click.echo(f"      {'':<10} fix: {f.fix}")
        problems = sum(f.level == "fail" for f in report.findings)
        click.echo("no problems found" if report.ok else f"{problems} problem{'s' if problems != 1 else ''} found")
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _strategy(spec: str, options: tuple[str, ...]) -> tuple[str, Any]:
    """``--strategy NAME[:ARG]`` and ``-o KEY=VALUE`` -> (strategy name, its config), exactly as
    ``start --discovery`` reads them (:func:`fabric.settings.parse_strategy`). Raises SettingsError."""
    try:
        extra = parse_options(options)
    except SettingsError as exc:  # not KEY=VALUE: a usage error, as for any malformed flag
        raise Failure(str(exc), EXIT_USAGE) from None
    name, primary = parse_strategy(spec)
    return discovery_config(name, {**primary, **extra}, "--strategy")


_WHY = {
    "zmtp": "",
    "open": "something listens there but does not speak ZeroMQ (wrong port?)",
    "refused": "nothing listens there (node down, or wrong port)",
    "timeout": "no TCP answer (firewall, wrong address, or host down)",
    "unresolvable": "the host name does not resolve",
    "unreachable": "no route to that address",
    "skipped": "ipc:// and inproc:// endpoints cannot be probed from here",
}


@cli.command()
@click.option("--strategy", required=True, metavar="SPEC",
              help="NAME or NAME:ARG (as `start --discovery`): static, dns, mdns, gossip, consul, kubernetes (k8s), "
                   "multi, or an installed plugin.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A strategy option; the value is read as JSON when it parses (-o 'seeds=[\"tcp://h:7946\"]').")
@click.option("--settle", type=click.FloatRange(0, 60), default=None,
              help="Seconds to listen before looking (default 3 for mdns and gossip, 0 otherwise).")
@click.option("--probe/--no-probe", default=True, show_default=True, help="Probe each candidate's endpoints.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=2.0, show_default=True, help="Seconds per probe.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def discover(strategy: str, options: tuple[str, ...], settle: float | None, probe: bool, timeout: float, as_json: bool) -> None:
    """What a discovery strategy sees, and whether each candidate is reachable on each channel.

    Runs the strategy once without announcing this process. Exit 1 when no candidate is reachable.
    """
    from fabric.discovery import DiscoveryError
    from fabric.discovery.report import discover as run_discover

    with _errors():
        try:
            name, config = _strategy(strategy, options)
        except SettingsError as exc:
            raise Failure(f"discover: {exc}", EXIT_CONFIG) from None
        wait = settle if settle is not None else (3.0 if name in ("mdns", "gossip") else 0.0)
        try:
            report = asyncio.run(run_discover(name, config, settle=wait, probe=probe, probe_timeout=timeout))
        except DiscoveryError as exc:  # unknown strategy, bad options: the caller's configuration
            raise Failure(f"discover: {exc}", EXIT_CONFIG) from None
    if as_json:
        click.echo(_dump(report.to_dict()))
    else:
        click.echo(f"strategy {report.strategy}: {len(report.candidates)} candidate(s)"
                   + ("" if report.backend_answered else " (the backend did not answer: last known or none)"))
        for entry in report.candidates:
            cand = entry.candidate
            who = f" {cand.name}" if cand.name else ""
            ident = f" ({cand.node_id[:8]})" if cand.node_id else ""
            click.echo(f"- {cand.seed}{who}{ident} via {cand.source}: {'reachable' if entry.reachable else 'NOT reachable'}")
            for p in entry.probes:
                why = _WHY.get(p.status, "")
                detail = f" - {p.detail}" if p.detail and p.status != "zmtp" else ""
                click.echo(f"    {p.channel:<13} {p.endpoint:<28} {p.status}{(': ' + why) if why else ''}{detail}")
        counters = ", ".join(f"{k}={v}" for k, v in sorted(report.counters.items()) if v)
        if counters:
            click.echo(f"counters: {counters}")
    if probe and not any(entry.reachable for entry in report.candidates):
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--bulk-mib", default=8, show_default=True, type=click.IntRange(1, 256), help="Size of the bulk transfer.")
def demo(bulk_mib: int) -> None:
    """Start a three-node cluster on 127.0.0.1 and exchange messages on every channel kind."""
    try:
        asyncio.run(run_demo(click.echo, bulk_mib=bulk_mib))
    except (FabricError, TimeoutError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


cli.add_command(keys_group)


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
