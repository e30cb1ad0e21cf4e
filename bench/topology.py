"""Topology bench: cluster formation time, broadcast latency and messages per broadcast vs N.

    python -m bench.topology              # full size (see --help for the sizes; about 10-15 minutes)
    python -m bench.topology --quick      # CI size: full-mesh 4, HyParView 16 (2 x 8), 100 simulated

Theory of operation
-------------------
*Real* configurations run fabric nodes on real ZeroMQ sockets (``ipc://`` under a short /tmp directory,
or ``--bind tcp`` for ``tcp://127.0.0.1`` ephemeral ports) in several OS processes: ``P`` hosts
(``python -m bench.overlay_host``) of ``K`` nodes each, ``NodeConfig.local()`` timers. All hosts start
and bind first (start-up is not timed); then every host is told, at once, to make all its nodes join
through the first node. Per repetition:

1. **formation**: from the moment the parent sends the join commands until the *last* node sees all N
   members alive (the time each node's ``join(min_members=N)`` returns). For HyParView the hosts also
   sample every node's overlay neighbours every 20 ms; the parent replays those samples to find when the
   active-view graph (links both ends hold) first became connected.
2. **broadcasts**: ``--warmup-broadcasts`` right after formation, reported apart (only their slowest:
   Plumtree is still pruning its initially all-eager tree then, and a node whose eager links were all
   pruned gets the message by IHAVE + GRAFT, one lazy round plus a graft timeout later), then
   ``--broadcasts`` measured ones; all from random origins, one at a time. Latency = the last receiver's first delivery time minus the origin's time just before
   ``broadcast()``. Both are ``time.monotonic()`` in different processes: on Linux that is
   ``CLOCK_MONOTONIC``, one clock for the whole machine, so they subtract; every run checks it (each
   host's reading must fall between two parent readings taken around the request).
3. **messages per broadcast**: counter deltas summed over every node, read from ``Node.stats()``
   before the broadcast and after it reached everyone plus a settle time (two lazy-push rounds): for
   HyParView, Plumtree's ``tree_sent_gossip`` (payload copies) and ``tree_sent_ihave`` /
   ``tree_sent_graft`` / ``tree_sent_prune`` (control); for full-mesh, the ``events`` channel's
   ``received`` counts (the broadcast is one PUB send that libzmq copies to each subscribed peer; there is
   no control traffic). A window in which another broadcast started (``tree_broadcasts`` or ``events``
   ``sent`` delta != 1, e.g. a membership record announcement) is flagged *not clean* and left out of the
   message figures. The record refresh is moved out of the run (``refresh_interval`` 600 s, see
   ``bench.overlay_host.bench_membership_config``) so that windows are clean.

The *simulated* configuration drives the real HyParView + Plumtree cores in
:class:`fabric.testing.OverlaySim` (one process, simulated network ``--sim-latency`` + uniform
``--sim-jitter`` per message, same ``MembershipConfig`` as the real runs): all N join at simulated time 0;
formation = when every node has had a member-up for all N - 1 others; latency and messages as above, in
**simulated seconds** (no CPU time is modelled: it shows the protocol's rounds and hops, not the
machine).

Each figure is given as median [min .. max] over the repetitions; broadcast p50/p99 are per repetition
(nearest rank: with 30 broadcasts the p99 is the slowest one) and then median [min .. max] over the
repetitions. Results go to ``bench/results/topology.json`` (``--out`` to change the folder).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import math
import os
import platform
import queue
import random
import shutil
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

from bench.harness import percentile

REPO = Path(__file__).resolve().parent.parent
TREE_CONTROL = ("tree_sent_ihave", "tree_sent_graft", "tree_sent_prune")
CHURN = ("declared_down", "refuted", "suspect_probes", "neighbour_failed", "promotion_timeouts")


class TopologyBenchError(RuntimeError):
    """A host process failed, timed out or a run could not be measured; the message says which."""


@dataclass(frozen=True)
class RealConfig:
    """One real configuration: ``processes`` hosts of ``per_process`` nodes on ``overlay``."""

    overlay: str
    nodes: int
    per_process: int

    @property
    def processes(self) -> int:
        """Number of host processes."""
        return self.nodes // self.per_process

    @property
    def label(self) -> str:
        """Row label."""
        return f"{self.overlay} real"


# -- parent side of a host process -----------------------------------------------------------------------


class HostProcess:
    """One ``bench.overlay_host`` child we started: JSON lines out, commands in; stopped by its own PID."""

    def __init__(self, prefix: str, count: int, overlay: str, base: str, bind: str) -> None:
        self.prefix = prefix
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.overlay_host", "--prefix", prefix, "--count", str(count),
             "--overlay", overlay, "--dir", base, "--bind", bind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=REPO, env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._backlog: list[dict[str, Any]] = []
        threading.Thread(target=self._read, name=f"host-{prefix}", daemon=True).start()
        self.ready: dict[str, Any] = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, line: str) -> None:
        """Write one command line."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TopologyBenchError(f"host {self.prefix} is gone ({exc}): {self.stderr_tail()}") from exc

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next ``event`` line (others are kept for later); raises on an error event or timeout."""
        for i, data in enumerate(self._backlog):
            if data.get("event") == event:
                return self._backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TopologyBenchError(f"host {self.prefix}: no {event!r} within {timeout:g}s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)
                raise TopologyBenchError(f"host {self.prefix} exited waiting for {event!r}: {self.stderr_tail()}")
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a stray line (e.g. a library print) is not part of the protocol
            if data.get("event") == "error":
                raise TopologyBenchError(f"host {self.prefix}: {data}")
            if data.get("event") == event:
                return dict(data)
            self._backlog.append(data)

    def stderr_tail(self, size: int = 2000) -> str:
        """The end of the child's stderr."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-size:]

    def stop(self) -> None:
        """Ask to quit; wait (bounded); kill by PID if needed."""
        with contextlib.suppress(TopologyBenchError):
            self.send("quit")
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


# -- real runs -------------------------------------------------------------------------------------------


def mutual_connected(views: dict[str, set[str]]) -> bool:
    """True when the graph whose edges are the links *both* ends list (``views``: node -> its neighbours)
    is connected over every node of ``views``. A one-sided entry (a join not answered yet, a DISCONNECT
    in flight) is no edge: a star of half-open links to the seed is not an overlay."""
    if not views:
        return True
    start = next(iter(views))
    seen = {start}
    stack = [start]
    while stack:
        a = stack.pop()
        for b in views[a]:
            if b not in seen and a in views.get(b, ()):
                seen.add(b)
                stack.append(b)
    return len(seen) == len(views)


def _connected_at(changes: list[list[Any]], ids: Sequence[str]) -> float | None:
    """Replay neighbour samples in time order; the first time the mutual-link graph over ``ids`` is connected."""
    current: dict[str, set[str]] = {i: set() for i in ids}
    for at, node_id, neighbours in sorted(changes, key=lambda c: c[0]):
        current[node_id] = set(neighbours)
        if mutual_connected(current):
            return float(at)
    return None


def _sum_stats(hosts: Sequence[HostProcess]) -> dict[str, int]:
    for h in hosts:
        h.send("stats")
    total: dict[str, int] = {}
    for h in hosts:
        for key, value in h.expect("stats", 30)["sums"].items():
            total[key] = total.get(key, 0) + value
    return total


def _one_broadcast(hosts: Sequence[HostProcess], where: dict[str, tuple[HostProcess, int]], names: list[str],
                   origin: str, tag: str, overlay: str, timeout: float, settle: float) -> dict[str, Any]:
    before = _sum_stats(hosts)
    host, index = where[origin]
    host.send(f"bcast {index} {tag}")
    t0 = float(host.expect("sent", 30)["t0"])
    expected = set(names) - {origin}
    deadline = time.monotonic() + timeout
    times: dict[str, float] = {}
    copies = 0
    while True:
        for h in hosts:
            h.send(f"got {tag}")
        times, copies = {}, 0
        for h in hosts:
            got = h.expect("got", 30)
            times.update(got["times"])
            copies += got["copies"]
        if expected <= set(times) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    time.sleep(settle)
    after = _sum_stats(hosts)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    reached = len(expected & set(times))
    out: dict[str, Any] = {
        "origin": origin, "reached": reached, "expected": len(expected),
        "latency_ms": (max(times[n] for n in expected) - t0) * 1000 if reached == len(expected) else None,
        "deliveries": copies,
        # failure-detector activity in the window (a loaded machine): members declared down, refutations,
        # suspicion probes, failed HyParView neighbours - each can cut a link a broadcast needs
        "churn": {k: delta[k] for k in CHURN if delta.get(k)},
    }
    if overlay == "full-mesh":
        out.update(payload=delta.get("events_received", 0), control=0, sends=delta.get("events_sent", 0),
                   clean=delta.get("events_sent", 0) == 1)
    else:
        out.update(payload=delta.get("tree_sent_gossip", 0),
                   control=sum(delta.get(k, 0) for k in TREE_CONTROL),
                   **{k.removeprefix("tree_sent_"): delta.get(k, 0) for k in TREE_CONTROL},
                   duplicates=delta.get("tree_duplicates", 0),
                   # other tree broadcasts in the window: membership record announcements (a suspicion,
                   # a refutation, a late join), whose copies the deltas include
                   other_broadcasts=delta.get("tree_broadcasts", 0) - 1, refuted=delta.get("refuted", 0),
                   clean=delta.get("tree_broadcasts", 0) == 1)
    return out


def run_real(cfg: RealConfig, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    """One repetition of a real configuration; returns its figures. Raises TopologyBenchError."""
    base = tempfile.mkdtemp(prefix="fft", dir="/tmp")
    hosts: list[HostProcess] = []
    try:
        for p in range(cfg.processes):
            hosts.append(HostProcess(f"p{p}", cfg.per_process, cfg.overlay, base, args.bind))
        for h in hosts:
            h.ready = h.expect("ready", args.start_timeout)
        # the parent and the hosts read one system-wide CLOCK_MONOTONIC: check it on this run
        for h in hosts:
            before = time.monotonic()
            h.send("clock")
            mono = h.expect("clock", 30)["mono"]
            after = time.monotonic()
            if not before <= mono <= after:
                raise TopologyBenchError(f"host {h.prefix}: monotonic clock {mono} not in [{before}, {after}]")
        seed = hosts[0].ready["seeds"][0]
        go = time.monotonic()
        for h in hosts:
            h.send(f"join {seed} {cfg.nodes} {args.form_timeout}")
        formed: list[float] = []
        for h in hosts:
            formed.extend(h.expect("formed", args.form_timeout + 30)["times"])
        result: dict[str, Any] = {
            "formation_s": max(formed) - go,
            "median_node_s": statistics.median(formed) - go,
            "first_node_s": min(formed) - go,
        }
        ids = [i for h in hosts for i in h.ready["ids"]]
        if cfg.overlay != "full-mesh":
            changes: list[list[Any]] = []
            for h in hosts:
                h.send("history")
                changes.extend(h.expect("history", 30)["changes"])
            at = _connected_at(changes, ids)
            result["connected_s"] = None if at is None else at - go
        where = {name: (h, i) for h in hosts for i, name in enumerate(h.ready["names"])}
        names = list(where)
        rng = random.Random(args.seed * 1000 + rep)
        settle = 0.05 if cfg.overlay == "full-mesh" else args.settle
        result["warmup"] = [
            _one_broadcast(hosts, where, names, rng.choice(names), f"w{w}", cfg.overlay, args.bcast_timeout, settle)
            for w in range(args.warmup_broadcasts)
        ]
        result["broadcasts"] = [
            _one_broadcast(hosts, where, names, rng.choice(names), f"b{b}", cfg.overlay, args.bcast_timeout, settle)
            for b in range(args.broadcasts)
        ]
        return result
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- simulation ------------------------------------------------------------------------------------------


def run_sim(n: int, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    """One simulated repetition of ``n`` HyParView nodes (simulated seconds)."""
    from bench.overlay_host import bench_membership_config
    from fabric.membership.hyparview import HyParView
    from fabric.membership.overlay import Deliver
    from fabric.testing.overlay_sim import NetFaults, OverlaySim, SimOverlayNode

    class TimedSim(OverlaySim):
        """Also notes the simulated time of each node's first delivery of each payload."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.delivered_at: dict[Any, dict[str, float]] = {}

        def _deliver(self, node: SimOverlayNode, effect: Deliver) -> None:
            super()._deliver(node, effect)
            self.delivered_at.setdefault(effect.payload, {}).setdefault(node.name, self.clock.now())

    wall = time.perf_counter()
    cfg = bench_membership_config()
    seed = args.seed * 1000 + rep
    with contextlib.redirect_stdout(io.StringIO()):  # the simulator prints its seed; we report it
        sim = TimedSim(seed, lambda ident, rng, now: HyParView(ident, cfg, rng=rng, now=now),
                       faults=NetFaults(latency=args.sim_latency, jitter=args.sim_jitter))
    rng = random.Random(seed)
    nodes = sim.spawn(n)
    sim.join(nodes[0], [])
    for node in nodes[1:]:
        sim.join(node, [nodes[0]])
    result: dict[str, Any] = {"seed": seed}
    def connected() -> bool:
        return mutual_connected({n.node_id.hex(): {p.hex() for p in n.core.neighbours()} for n in nodes})

    if not sim.run_until(connected, timeout=args.form_timeout, step=0.01):
        raise TopologyBenchError(f"simulated {n}: active views not connected after {args.form_timeout}s")
    result["connected_s"] = sim.now
    ups: dict[str, set[bytes]] = {}
    formed_at: dict[str, float] = {}
    scanned = 0

    def formed() -> bool:
        nonlocal scanned
        log = sim.log
        for rec in log[scanned:]:
            if rec.kind == "up" and rec.observer not in formed_at:
                seen = ups.setdefault(rec.observer, set())
                seen.add(rec.subject)
                if len(seen) >= n - 1:
                    formed_at[rec.observer] = rec.time
        scanned = len(log)
        return len(formed_at) == n

    if not sim.run_until(formed, timeout=args.form_timeout, step=0.05):
        raise TopologyBenchError(f"simulated {n}: {len(formed_at)} of {n} nodes see everyone after {args.form_timeout}s")
    downs = [r for r in sim.log if r.kind in ("down", "left")]
    if downs:  # an up count is only "sees all N alive" when nobody went down meanwhile
        raise TopologyBenchError(f"simulated {n}: {len(downs)} members went down during formation")
    times = sorted(formed_at.values())
    result.update(formation_s=times[-1], median_node_s=statistics.median(times), first_node_s=times[0])
    sim.run(2.0)  # let the join announcements finish, like the real runs' warm-up

    def one(tag: str) -> dict[str, Any]:
        origin = rng.choice(nodes)
        sent_before = dict(sim.sent)
        t0 = sim.now
        msg_id = sim.broadcast(origin, tag)
        if msg_id is None:
            raise TopologyBenchError(f"simulated broadcast {tag} sent nothing")
        expected = n - 1
        sim.run_until(lambda: len(sim.delivered_at.get(tag, {})) >= expected, timeout=args.bcast_timeout, step=0.002)
        got = sim.delivered_at.get(tag, {})
        sim.run(args.settle)
        delta = {k: v - sent_before.get(k, 0) for k, v in sim.sent.items()}
        payload = sim.broadcast_cost(msg_id)["payload"]
        return {
            "origin": origin.name, "reached": len(got), "expected": expected,
            "latency_ms": (max(got.values()) - t0) * 1000 if len(got) == expected else None,
            "payload": delta.get("tree.gossip", 0),
            "control": sum(delta.get(k, 0) for k in ("tree.ihave", "tree.graft", "tree.prune")),
            "ihave": delta.get("tree.ihave", 0), "graft": delta.get("tree.graft", 0),
            "prune": delta.get("tree.prune", 0),
            "max_hops": max((d[4] for d in sim.deliveries if d[2] == tag), default=0),
            # another tree broadcast (a record announcement) in the window: its copies are in the deltas
            "clean": delta.get("tree.gossip", 0) == payload,
        }

    result["warmup"] = [one(f"w{w}") for w in range(args.warmup_broadcasts)]
    result["broadcasts"] = [one(f"b{b}") for b in range(args.sim_broadcasts)]
    result["wall_s"] = time.perf_counter() - wall
    return result


# -- summary and table -----------------------------------------------------------------------------------


def _spread(values: Sequence[float | None]) -> dict[str, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarise(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median [min .. max] over repetitions of every figure of one configuration."""
    out: dict[str, Any] = {}
    for key in ("formation_s", "median_node_s", "connected_s"):
        out[key] = _spread([r.get(key) for r in reps])
    p50s, p99s, payload, control, per_rep_complete = [], [], [], [], []
    total = complete = clean = 0
    for r in reps:
        bs = r["broadcasts"]
        lat = sorted(b["latency_ms"] for b in bs if b["latency_ms"] is not None)
        total += len(bs)
        complete += len(lat)
        per_rep_complete.append(len(lat))
        if lat:
            p50s.append(percentile(lat, 50))
            p99s.append(percentile(lat, 99))
        cl = [b for b in bs if b["clean"] and b["reached"] == b["expected"]]
        clean += len(cl)
        if cl:
            payload.append(statistics.median(b["payload"] for b in cl))
            control.append(statistics.median(b["control"] for b in cl))
    warm = [max((b["latency_ms"] if b["latency_ms"] is not None else math.inf) for b in r["warmup"])
            for r in reps if r.get("warmup")]
    out["warmup_max_ms"] = _spread(warm)
    out.update(p50_ms=_spread(p50s), p99_ms=_spread(p99s), payload=_spread(payload), control=_spread(control),
               broadcasts=total, complete=complete, clean=clean)
    return out


def _fmt(s: dict[str, float] | None, scale: float = 1.0, digits: int = 0) -> str:
    if s is None:
        return "-"
    med, lo, hi = s["median"] * scale, s["min"] * scale, s["max"] * scale
    if s["n"] == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{lo:.{digits}f} .. {hi:.{digits}f}]"


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The three tables as text."""
    lines = [
        f"topology bench ({meta['time_utc']}, {meta['cpus']} CPUs, Python {meta['python']}, load before "
        f"{meta['load_before']}; real = fabric nodes on {meta['bind']}://, NodeConfig.local() timers; "
        f"sim = OverlaySim, latency {meta['sim_latency'] * 1000:g} ms + U[0, {meta['sim_jitter'] * 1000:g}] ms "
        "per message, SIMULATED seconds)",
        "figures: median [min .. max] over reps",
        "",
    ]
    head = f"{'configuration':<18} {'N':>5}  {'procs x nodes':<13} {'reps':>4}"

    def key(row: dict[str, Any]) -> str:
        layout = "1 (simulated)" if row["kind"] == "sim" else f"{row['processes']} x {row['per_process']}"
        return f"{row['label']:<18} {row['nodes']:>5}  {layout:<13} {row['reps_done']:>4}"

    lines.append("A. formation time: join sent -> every node sees all N members alive, ms "
                 "(simulated rows: simulated ms); HyParView: also when the active-view graph (mutual links) got connected")
    lines.append(f"{head}  {'last node ms':<22} {'median node ms':<22} {'active views connected ms':<22}")
    for row in rows:
        s = row["summary"]
        if s is None:
            lines.append(f"{key(row)}  FAILED: {row['errors'][-1][:300] if row['errors'] else '?'}")
            continue
        lines.append(f"{key(row)}  {_fmt(s['formation_s'], 1000):<22} {_fmt(s['median_node_s'], 1000):<22} "
                     f"{_fmt(s['connected_s'], 1000):<22}")
    lines += ["", "B. broadcast latency: broadcast() on the origin -> the last of the N - 1 others delivers it, ms "
              "(p50/p99 per rep, nearest rank); warm-up = the first broadcasts after formation, not in p50/p99 (inf: one did not reach all)"]
    lines.append(f"{head}  {'p50 ms':<22} {'p99 ms':<24} {'reached all':<12} {'warm-up: slowest ms':<22}")
    for row in rows:
        s = row["summary"]
        if s is None:
            continue
        lines.append(f"{key(row)}  {_fmt(s['p50_ms'], 1, 1):<22} {_fmt(s['p99_ms'], 1, 1):<24} "
                     f"{str(s['complete']) + '/' + str(s['broadcasts']):<12} {_fmt(s['warmup_max_ms'], 1, 0):<22}")
    lines += ["", "C. messages per broadcast (counter deltas over all nodes; median per rep): payload copies "
              "and control (Plumtree IHAVE + GRAFT + PRUNE; full-mesh: none)"]
    lines.append(f"{head}  {'N - 1':>5}  {'payload':<22} {'payload/(N-1)':<13} {'control':<22} {'clean windows':<13}")
    for row in rows:
        s = row["summary"]
        if s is None:
            continue
        ratio = f"{s['payload']['median'] / (row['nodes'] - 1):.2f}" if s["payload"] else "-"
        lines.append(f"{key(row)}  {row['nodes'] - 1:>5}  {_fmt(s['payload']):<22} {ratio:<13} "
                     f"{_fmt(s['control']):<22} {s['clean']}/{s['broadcasts']}")
    notes = [f"note: {r['label']} {r['nodes']}: {r['note']}" for r in rows if r.get("note")]
    notes += [f"note: {r['label']} {r['nodes']}: {len(r['errors'])} rep(s) failed, e.g. {r['errors'][0][:300]}"
              for r in rows if r["errors"] and r["summary"] is not None]
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------------


def _pairs(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        if item.strip():
            n, _, k = item.partition(":")
            out.append((int(n), int(k) if k else int(n)))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(prog="python -m bench.topology", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="CI sizes: full-mesh 4:1, HyParView 16:8, 100 simulated, 1 rep, 5 broadcasts")
    p.add_argument("--fullmesh", default=None, help="full-mesh sizes N:nodes-per-process, comma separated "
                   "(default 8:1,16:1,32:1 - one node per process)")
    p.add_argument("--hyparview", default=None, help="HyParView sizes N:nodes-per-process (default 32:8,128:16)")
    p.add_argument("--sim", default=None, help="simulated HyParView sizes, comma separated (default 1000; '' = none)")
    p.add_argument("--reps", type=int, default=None, help="repetitions of each real config (default 3)")
    p.add_argument("--large-reps", type=int, default=None, help="repetitions when N >= 100 (default 3)")
    p.add_argument("--sim-reps", type=int, default=None, help="repetitions (seeds) of each simulated size (default 3)")
    p.add_argument("--broadcasts", type=int, default=None, help="measured broadcasts per real rep (default 30)")
    p.add_argument("--sim-broadcasts", type=int, default=None, help="measured broadcasts per simulated rep (default 30)")
    p.add_argument("--warmup-broadcasts", type=int, default=5,
                   help="broadcasts right after formation, reported apart (the tree is still being pruned)")
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds after a broadcast reached all before its counters are read (2+ lazy rounds)")
    p.add_argument("--bind", choices=("ipc", "tcp"), default="ipc")
    p.add_argument("--sim-latency", type=float, default=0.005, help="simulated one-way delay, s")
    p.add_argument("--sim-jitter", type=float, default=0.005, help="simulated extra delay U[0, j], s")
    p.add_argument("--form-timeout", type=float, default=240.0, help="formation bound, s")
    p.add_argument("--start-timeout", type=float, default=180.0, help="host start-up bound, s")
    p.add_argument("--bcast-timeout", type=float, default=10.0, help="per-broadcast bound, s")
    p.add_argument("--seed", type=int, default=1, help="seeds origins and the simulation")
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder for topology.json")
    p.add_argument("--json-name", default="topology.json")
    return p


def _apply_defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    defaults = {
        "fullmesh": "4:1" if quick else "8:1,16:1,32:1",
        "hyparview": "16:8" if quick else "32:8,128:16",
        "sim": "100" if quick else "1000",
        "reps": 1 if quick else 3,
        "large_reps": 1 if quick else 3,
        "sim_reps": 1 if quick else 3,
        "broadcasts": 5 if quick else 30,
        "sim_broadcasts": 5 if quick else 30,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if quick:
        args.warmup_broadcasts = min(args.warmup_broadcasts, 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every configuration, print the tables, write the JSON; exit 1 if any configuration failed."""
    args = build_parser().parse_args(argv)
    _apply_defaults(args)
    configs: list[RealConfig] = []
    for overlay, spec in (("full-mesh", args.fullmesh), ("hyparview", args.hyparview)):
        for n, k in _pairs(spec):
            if n % k:
                raise SystemExit(f"{overlay} {n}:{k}: N must be a multiple of the nodes per process")
            configs.append(RealConfig(overlay, n, k))
    sims = [int(x) for x in args.sim.split(",") if x.strip()]
    meta = {
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "bind": args.bind,
        "load_before": [round(x, 2) for x in os.getloadavg()], "quick": args.quick,
        "sim_latency": args.sim_latency, "sim_jitter": args.sim_jitter, "settle_s": args.settle,
        "warmup_broadcasts": args.warmup_broadcasts, "seed": args.seed,
        "membership": "MembershipConfig.local(refresh_interval=600, record_ttl=1800)",
    }
    rows: list[dict[str, Any]] = []
    failed = False
    for cfg in configs:
        reps = args.large_reps if cfg.nodes >= 100 else args.reps
        row: dict[str, Any] = {"label": cfg.label, "kind": "real", "overlay": cfg.overlay, "nodes": cfg.nodes,
                               "processes": cfg.processes, "per_process": cfg.per_process, "reps": [], "errors": []}
        for rep in range(reps):
            started = time.monotonic()
            print(f"... {cfg.overlay} {cfg.nodes} ({cfg.processes} x {cfg.per_process}) rep {rep + 1}/{reps}",
                  file=sys.stderr, flush=True)
            try:
                result = run_real(cfg, rep, args)
            except TopologyBenchError as exc:
                row["errors"].append(str(exc))
                print(f"    failed: {str(exc)[:400]}", file=sys.stderr, flush=True)
                continue
            result["wall_s"] = time.monotonic() - started
            row["reps"].append(result)
        if cfg.nodes >= 100 and reps < args.reps:
            row["note"] = f"{reps} rep(s) only (--large-reps), to keep the run short"
        rows.append(row)
    for n in sims:
        row = {"label": "hyparview sim", "kind": "sim", "overlay": "hyparview", "nodes": n, "processes": 1,
               "per_process": n, "reps": [], "errors": []}
        for rep in range(args.sim_reps):
            print(f"... hyparview simulated {n} rep {rep + 1}/{args.sim_reps}", file=sys.stderr, flush=True)
            try:
                row["reps"].append(run_sim(n, rep, args))
            except TopologyBenchError as exc:
                row["errors"].append(str(exc))
                print(f"    failed: {str(exc)[:400]}", file=sys.stderr, flush=True)
        rows.append(row)
    for row in rows:
        row["reps_done"] = len(row["reps"])
        row["summary"] = summarise(row["reps"]) if row["reps"] else None
        failed = failed or bool(row["errors"])
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = render(rows, meta)
    print(text, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / args.json_name).write_text(json.dumps({"meta": meta, "configs": rows, "table": text}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
