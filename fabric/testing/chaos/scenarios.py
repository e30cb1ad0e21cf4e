"""The chaos scenarios (a)-(f) and their reports.

Each scenario starts a fresh :class:`~.cluster.Cluster`, lets it converge, starts the workload on every
host, inflicts its fault, and then checks the histories (:mod:`.checkers`). While it runs, a
:class:`Monitor` thread polls every host's membership view (over the command pipes, which faults never
touch) and its RSS, so the detection, re-merge and false-suspicion times come from one timeline.

Times are measured and reported, never asserted; what a scenario *passes* on is correctness: no lost
acknowledged operation, no duplicate, and the membership outcome named in its docstring within a generous
bound (polled positively). Sizes: :data:`QUICK` (CI) and :data:`FULL` (the issue's sizes).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...membership.config import MembershipConfig
from .checkers import (
    availability,
    delivered_fraction,
    duplicates,
    lost_acknowledged,
    order_violations,
    run_checkers,
)
from .cluster import Cluster
from .history import real_time
from .net import Network

__all__ = ["FULL", "QUICK", "SCENARIOS", "Monitor", "Sizes", "run_scenario"]


@dataclass(frozen=True)
class Sizes:
    """Durations (seconds), host counts and workload rate of one suite size."""

    partition_hosts: int
    partition_s: float
    oneway_hosts: int
    oneway_s: float
    pause_hosts: int
    pause_s: float
    churn_hosts: int
    churn_s: float
    soak_hosts: int
    soak_s: float
    skew_s: float
    rate: float
    """Workload operations per second per host."""
    settle_bound: float = 90.0
    """Generous bound for convergence / re-merge polls."""


QUICK = Sizes(partition_hosts=5, partition_s=8, oneway_hosts=4, oneway_s=8, pause_hosts=3, pause_s=5, churn_hosts=4,
              churn_s=20, soak_hosts=3, soak_s=60, skew_s=600, rate=8)
FULL = Sizes(partition_hosts=5, partition_s=30, oneway_hosts=5, oneway_s=30, pause_hosts=5, pause_s=5, churn_hosts=5,
             churn_s=120, soak_hosts=3, soak_s=600, skew_s=600, rate=10)


NETEM_SPEC = "delay 20ms 10ms duplicate 2% reorder 10% 50%"
"""What scenario (b) adds on one link where the kernel has netem."""


class Monitor:
    """Background poller: every ``interval`` s each host's alive view and member statuses, RSS every ``rss_every``."""

    def __init__(self, cluster: Cluster, interval: float = 0.25, rss_every: float = 1.0) -> None:
        self.cluster = cluster
        self.interval = interval
        self.rss_every = rss_every
        self.timeline: list[tuple[float, dict[str, list[str] | None], dict[str, dict[str, str]]]] = []
        self.rss: list[tuple[float, dict[str, int | None]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-monitor")

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        next_rss = 0.0
        while not self._stop.is_set():
            now = real_time()
            views: dict[str, list[str] | None] = {}
            statuses: dict[str, dict[str, str]] = {}
            for h in self.cluster.hosts:
                reply = self.cluster.command(h.index, "members", timeout=3.0)
                views[h.name] = list(reply["alive"]) if reply else None
                statuses[h.name] = {m["name"]: m["status"] for m in reply["members"]} if reply else {}
            with self._lock:
                self.timeline.append((now, views, statuses))
            if now >= next_rss:
                with self._lock:
                    self.rss.append((now, self.cluster.rss()))
                next_rss = now + self.rss_every
            self._stop.wait(self.interval)

    def latest(self) -> dict[str, list[str] | None]:
        """The last polled views."""
        with self._lock:
            return dict(self.timeline[-1][1]) if self.timeline else {}

    def wait(self, predicate: Callable[[dict[str, list[str] | None]], bool], timeout: float) -> float | None:
        """Real time of the first poll (started after now) whose views satisfy ``predicate``; None after ``timeout``."""
        start = real_time()
        seen = 0
        while real_time() - start <= timeout:
            with self._lock:
                fresh = [(t, v) for t, v, _s in self.timeline[seen:] if t >= start]
                seen = len(self.timeline)
            for t, views in fresh:
                if predicate(views):
                    return t
            time.sleep(0.05)
        return None

    def first(self, predicate: Callable[[dict[str, list[str] | None]], bool], after: float) -> float | None:
        """Real time of the first recorded poll at or after ``after`` satisfying ``predicate``."""
        with self._lock:
            for t, views, _s in self.timeline:
                if t >= after and predicate(views):
                    return t
        return None

    def false_down(self, start: float, end: float, healthy: Sequence[str]) -> dict[str, Any]:
        """Over polls in [start, end): per (observer, subject) of ``healthy`` hosts, the longest run of polls in
        which the observer did not see the subject alive, and how many such runs began."""
        worst: dict[str, float] = {}
        runs = 0
        since: dict[tuple[str, str], float] = {}
        with self._lock:
            polls = [(t, v) for t, v, _s in self.timeline if start <= t < end]
        for t, views in polls:
            for obs in healthy:
                view = views.get(obs)
                if view is None:
                    continue
                for subj in healthy:
                    key = (obs, subj)
                    if subj not in view:
                        if key not in since:
                            since[key] = t
                            runs += 1
                        worst[f"{obs}->{subj}"] = max(worst.get(f"{obs}->{subj}", 0.0), t - since[key])
                    else:
                        since.pop(key, None)
        return {"runs": runs, "max_s": round(max(worst.values(), default=0.0), 2),
                "pairs": {k: round(v, 2) for k, v in sorted(worst.items()) if v > 0}}

    def statuses_seen(self, subject: str, start: float) -> list[str]:
        """Distinct statuses other hosts reported for ``subject`` since ``start``, in order of first sight."""
        seen: list[str] = []
        with self._lock:
            for t, _v, statuses in self.timeline:
                if t < start:
                    continue
                for obs, s in statuses.items():
                    if obs != subject and subject in s and s[subject] not in seen:
                        seen.append(s[subject])
        return seen


def _slope_kb_per_min(samples: Sequence[tuple[float, int]]) -> float | None:
    if len(samples) < 3:
        return None
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples)
    return None if den == 0 else round(60.0 * sum((t - mx) * (v - my) for t, v in samples) / den, 1)


def rss_report(rss: Sequence[tuple[float, dict[str, int | None]]], warmup: float = 0.2) -> dict[str, Any]:
    """Per host: first/last/max VmRSS (kB), least-squares slope (kB/min) after the first ``warmup`` share of
    the run and over its second half (where a leak shows and warm-up growth does not)."""
    out: dict[str, Any] = {}
    if not rss:
        return out
    t0, t1 = rss[0][0], rss[-1][0]
    cut = t0 + warmup * (t1 - t0)
    for name in rss[0][1]:
        series = [(t, v[name]) for t, v in rss if v.get(name) is not None]
        vals = [(t, int(x)) for t, x in series if x is not None]
        if not vals:
            continue
        late = [(t, x) for t, x in vals if t >= cut]
        second_half = [(t, x) for t, x in vals if t >= (t0 + t1) / 2]
        out[name] = {"first_kb": vals[0][1], "last_kb": vals[-1][1], "max_kb": max(x for _, x in vals),
                     "slope_kb_per_min": _slope_kb_per_min(late),
                     "slope_second_half_kb_per_min": _slope_kb_per_min(second_half), "samples": len(vals)}
    return out


def _pct(ok_total: tuple[int, int]) -> float | None:
    ok, total = ok_total
    return None if total == 0 else round(100.0 * ok / total, 3)


@dataclass
class Context:
    """What a scenario body gets: the cluster, its monitor, sizes, and a place for results."""

    cluster: Cluster
    monitor: Monitor
    sizes: Sizes
    rng: random.Random
    result: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Named availability windows: name -> (start, end) real time."""
    passed: list[tuple[str, bool]] = field(default_factory=list)
    """(criterion, met) pairs besides lost == 0 and no duplicates."""

    def all_see(self, names: Sequence[str], hosts: Sequence[str] | None = None) -> Callable[[dict[str, list[str] | None]], bool]:
        """Predicate: each of ``hosts`` (default: all) answers and sees exactly ``names`` alive."""
        want = sorted(names)

        def pred(views: dict[str, list[str] | None]) -> bool:
            for h in hosts if hosts is not None else list(views):
                v = views.get(h)
                if v is None or sorted(v) != want:
                    return False
            return True

        return pred


def _partition(ctx: Context) -> None:
    """(a) 3/2 partition, then heal: each side sees only itself after detection; after heal all five re-merge
    and stay merged (no split brain)."""
    c, m, s = ctx.cluster, ctx.monitor, ctx.sizes
    names = c.names
    major, minor = [0, 1, 2], [3, 4]
    major_n, minor_n = [names[i] for i in major], [names[i] for i in minor]
    t_fault = real_time()
    c.partition(major, minor)
    detected = m.wait(lambda v: ctx.all_see(major_n, major_n)(v) and ctx.all_see(minor_n, minor_n)(v), s.settle_bound)
    time.sleep(max(0.0, t_fault + s.partition_s - real_time()))
    t_heal = real_time()
    c.heal()
    merged = m.wait(ctx.all_see(names), s.settle_bound)
    stable = merged is not None and m.wait(lambda v: ctx.all_see(names)(v), 10) is not None
    time.sleep(2.0)
    split = m.first(lambda v: not ctx.all_see(names)(v), after=(merged or t_heal) + 0.01)
    ctx.result.update(
        fault_s=round(t_heal - t_fault, 2),
        detect_s=None if detected is None else round(detected - t_fault, 2),
        remerge_s=None if merged is None else round(merged - t_heal, 2),
        split_brain_after_heal=split is not None,
    )
    end_detect = detected if detected is not None else t_heal
    ctx.windows.update(during_fault=(t_fault, t_heal), outside_detection=(end_detect, t_heal))
    ctx.result["majority_side"] = major_n
    ctx.passed += [("detected", detected is not None), ("re-merged", merged is not None and stable),
                   ("no split brain after heal", split is None)]


def _oneway(ctx: Context) -> None:
    """(b) h1 -> h0 dropped (one way), 20 % loss between h2 and h3 and, where the kernel has netem and there
    are 5 hosts, delay/duplication/reordering on h4's link: every host stays healthy; reports how long any
    observer did not see a healthy member alive, against the documented detection bound."""
    c, m, s = ctx.cluster, ctx.monitor, ctx.sizes
    names = c.names
    faults = ["one-way h1->h0 dropped", "20% loss h2<->h3"]
    t_fault = real_time()
    c.partition([1], [0], one_way=True)
    c.loss(2, 3, 20)
    netem = c.network.netem_status()
    if netem == "available" and len(names) > 4:
        c.network.netem(4, NETEM_SPEC)  # delay, duplication and reordering on h4's link
        faults.append(f"netem on h4: {NETEM_SPEC}")
    else:
        faults.append(f"netem: {netem} (no delay/duplication/reordering)")
    time.sleep(s.oneway_s)
    t_heal = real_time()
    c.heal()
    merged = m.wait(ctx.all_see(names), s.settle_bound)
    fd = m.false_down(t_fault, t_heal, names)
    bound = MembershipConfig.local().detection_bound(drop=0.2)
    ctx.result.update(
        fault_s=round(t_heal - t_fault, 2), faults=faults,
        false_down=fd, documented_bound_s=round(bound, 2),
        statuses_seen={n: m.statuses_seen(n, t_fault) for n in names[:4]},
        remerge_s=None if merged is None else round(merged - t_heal, 2),
    )
    ctx.windows.update(during_fault=(t_fault, t_heal), outside_detection=(t_fault, t_heal))
    ctx.passed += [(f"no healthy member unseen longer than {bound:.2f}s", fd["max_s"] <= bound),
                   ("re-merged after heal", merged is not None)]


def _pause(ctx: Context) -> None:
    """(c) SIGSTOP the last host for a GC-like stall, then SIGCONT: the others suspect it, then readmit the
    same process (no restart)."""
    c, m, s = ctx.cluster, ctx.monitor, ctx.sizes
    names = c.names
    victim = len(names) - 1
    others = [n for n in names if n != names[victim]]
    pid = c.hosts[victim].pid
    t_fault = real_time()
    c.pause(victim)
    detected = m.wait(ctx.all_see(others, others), s.pause_s + 5)
    time.sleep(max(0.0, t_fault + s.pause_s - real_time()))
    t_heal = real_time()
    c.resume(victim)
    merged = m.wait(ctx.all_see(names), s.settle_bound)
    same = c.hosts[victim].pid == pid and c.hosts[victim].run == 0
    ctx.result.update(
        paused=names[victim], fault_s=round(t_heal - t_fault, 2),
        detect_s=None if detected is None else round(detected - t_fault, 2),
        remerge_s=None if merged is None else round(merged - t_heal, 2),
        statuses_seen=m.statuses_seen(names[victim], t_fault), same_process=same,
    )
    end_detect = detected if detected is not None else t_heal
    ctx.windows.update(during_fault=(t_fault, t_heal), outside_detection=(end_detect, t_heal))
    ctx.passed += [("suspected while paused", detected is not None),
                   ("readmitted without restart", merged is not None and same)]


def _churn(ctx: Context) -> None:
    """(d) kill -9 and restart random hosts (one at a time, same identity) under load; after churn stops
    all agree on the full membership within the bound."""
    c, m, s, rng = ctx.cluster, ctx.monitor, ctx.sizes, ctx.rng
    names = c.names
    t_fault = real_time()
    kills = 0
    while real_time() - t_fault < s.churn_s:
        victim = rng.randrange(len(names))
        c.kill(victim)
        kills += 1
        time.sleep(rng.uniform(0.5, 2.0))
        c.restart(victim)
        time.sleep(rng.uniform(1.0, 3.0))
    t_heal = real_time()
    merged = m.wait(ctx.all_see(names), s.settle_bound)
    ctx.result.update(fault_s=round(t_heal - t_fault, 2), kills=kills,
                      remerge_s=None if merged is None else round(merged - t_heal, 2))
    ctx.windows.update(during_fault=(t_fault, t_heal), outside_detection=(t_fault, t_heal))
    ctx.passed += [("all agree after churn", merged is not None)]


def _soak(ctx: Context) -> None:
    """(e) steady bounded load for the soak duration: no loss, RSS slope reported."""
    t0 = real_time()
    time.sleep(ctx.sizes.soak_s)
    ctx.result.update(fault_s=round(real_time() - t0, 2))
    ctx.windows.update(during_fault=(t0, real_time()), outside_detection=(t0, real_time()))


def _skew(ctx: Context) -> None:
    """(f) restart the last host with its clock behind by ``skew_s`` (it comes back with a lower incarnation
    than its previous life), then with its clock ahead: it must be readmitted both times."""
    c, m, s = ctx.cluster, ctx.monitor, ctx.sizes
    names = c.names
    victim = len(names) - 1
    t_fault = real_time()
    out: dict[str, Any] = {}
    for label, skew in (("behind", -s.skew_s), ("ahead", s.skew_s)):
        before = _incarnation_seen(c, 0, names[victim])
        c.kill(victim)
        started = real_time()
        c.restart(victim, skew=skew)
        merged = m.wait(ctx.all_see(names), 45.0)
        out[label] = {"skew_s": skew, "previous_incarnation": before,
                      "started_incarnation": c.hosts[victim].ready.get("incarnation"),
                      "incarnation_seen_after": _incarnation_seen(c, 0, names[victim]),
                      "rejoin_s": None if merged is None else round(merged - started, 2)}
        ctx.passed.append((f"readmitted with clock {label}", merged is not None))
    t_heal = real_time()
    ctx.result.update(fault_s=round(t_heal - t_fault, 2), skewed=names[victim], restarts=out)
    ctx.windows.update(during_fault=(t_fault, t_heal), outside_detection=(t_fault, t_heal))


def _incarnation_seen(c: Cluster, observer: int, subject: str) -> int | None:
    reply = c.command(observer, "members")
    for entry in reply["members"] if reply else []:
        if entry["name"] == subject:
            return int(entry["incarnation"])
    return None


@dataclass(frozen=True)
class Scenario:
    """A named scenario: its body, how many hosts, and whether it needs network faults."""

    key: str
    name: str
    body: Callable[[Context], None]
    hosts: Callable[[Sizes], int]
    needs_network_faults: bool


SCENARIOS: dict[str, Scenario] = {
    "a": Scenario("a", "partition-3-2", _partition, lambda s: s.partition_hosts, True),
    "b": Scenario("b", "one-way-and-loss", _oneway, lambda s: s.oneway_hosts, True),
    "c": Scenario("c", "pause", _pause, lambda s: s.pause_hosts, False),
    "d": Scenario("d", "churn", _churn, lambda s: s.churn_hosts, False),
    "e": Scenario("e", "soak", _soak, lambda s: s.soak_hosts, False),
    "f": Scenario("f", "clock-skew-restart", _skew, lambda s: 3, False),
}
"""Scenarios by key, in suite order."""


def run_scenario(key: str, sizes: Sizes, make_network: Callable[[], Network], data_root: Path, seed: int = 0) -> dict[str, Any]:
    """Run scenario ``key`` on a fresh cluster; its JSON-able report (``passed`` says whether it held)."""
    sc = SCENARIOS[key]
    network = make_network()
    report: dict[str, Any] = {"scenario": f"{key}-{sc.name}", "mode": network.mode, "doc": (sc.body.__doc__ or "").strip()}
    if sc.needs_network_faults:
        report["network_faults"] = network.fault_injection
    if sc.needs_network_faults and not network.supports_partitions:
        network.close()
        report.update(supported=False, reason=f"not supported in {network.mode} mode (no network fault injection)",
                      passed=None, lost=0, duplicates=0, attempted=0)
        return report
    n = sc.hosts(sizes)
    started = time.monotonic()
    data = data_root / f"{key}-{sc.name}"
    with Cluster(n, network=network, data_root=str(data), rng_seed=seed) as cluster:
        report["netem"] = network.netem_status()
        report["hosts"] = n
        cluster.start()
        formed = cluster.wait_converged(sizes.settle_bound)
        report["formed_s"] = None if formed is None else round(formed, 2)
        with Monitor(cluster, rss_every=1.0 if key != "e" else max(1.0, sizes.soak_s / 120)) as monitor:
            ctx = Context(cluster, monitor, sizes, random.Random(seed))
            ctx.passed.append(("cluster formed", formed is not None))
            cluster.workload(sizes.rate)
            time.sleep(3.0)  # warm-up traffic before the fault
            sc.body(ctx)
            time.sleep(2.0)  # traffic after the fault
            cluster.workload(0)
            time.sleep(cluster.call_timeout + 1.0)  # let calls in flight complete or time out
        report.update(ctx.result)
        events, receipts = cluster.histories()
        rss = monitor.rss
    lost = lost_acknowledged(events, receipts)
    dups = duplicates(receipts)
    invokes = [e for e in events if e.type == "invoke"]
    report.update(
        supported=True,
        wall_s=round(time.monotonic() - started, 1),
        attempted=len(invokes),
        by_kind={k: sum(1 for e in invokes if e.kind == k) for k in ("write", "read", "send", "broadcast")},
        acknowledged=sum(1 for e in events if e.type == "ok" and e.kind == "write"),
        failed=sum(1 for e in events if e.type == "fail"),
        lost=len(lost), lost_examples=lost[:10],
        duplicates=len(dups), order_violations=len(order_violations(receipts)),
        sends_delivered="{}/{}".format(*delivered_fraction(events, receipts, "send")),
        checkers=run_checkers(events, receipts),
    )
    avail: dict[str, Any] = {}
    for wname, (a, b) in ctx.windows.items():
        avail[wname] = _pct(availability(events, start=a, end=b))
    if "majority_side" in report and "outside_detection" in ctx.windows:
        a, b = ctx.windows["outside_detection"]
        side = report["majority_side"]
        for kind in ("write", "read"):
            avail[f"majority_{kind}s_outside_detection"] = _pct(availability(events, start=a, end=b, hosts=side, targets=side, kinds=(kind,)))
        a, b = ctx.windows["during_fault"]
        avail["majority_within_side_during_fault"] = _pct(availability(events, start=a, end=b, hosts=side, targets=side))
    report["availability_pct"] = avail
    report["rss"] = rss_report(rss)
    report["rss_timeline"] = [[round(t, 1), v] for t, v in rss]
    criteria = [*ctx.passed, ("lost == 0", not lost), ("no duplicates", not dups)]
    report["criteria"] = {k: v for k, v in criteria}
    report["passed"] = all(v for _, v in criteria)
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for a report: scenario, mode, counts, times, availability, verdict (always has ``lost N``)."""
    head = f"{report['scenario']:<22} mode={report['mode']:<10}"
    if "network_faults" in report:
        head += f" faults-by={report['network_faults']}"
    if not report.get("supported", True):
        return f"{head} ops 0 lost 0 SKIPPED: {report['reason']}"
    avail = report.get("availability_pct", {})
    parts = [
        f"hosts={report.get('hosts')}", f"ops {report['attempted']}", f"acked {report['acknowledged']}",
        f"lost {report['lost']}", f"dup {report['duplicates']}",
    ]
    for key, label in (("detect_s", "detect"), ("remerge_s", "remerge")):
        if key in report:
            parts.append(f"{label} {report[key]}s" if report[key] is not None else f"{label} NEVER")
    if "false_down" in report:
        parts.append(f"max-unseen {report['false_down']['max_s']}s (bound {report['documented_bound_s']}s)")
    for label, r in report.get("restarts", {}).items():
        parts.append(f"rejoin-clock-{label} {r['rejoin_s']}s")
    seen = report.get("statuses_seen")
    if isinstance(seen, list):
        parts.append("seen " + ">".join(seen))
    elif isinstance(seen, dict):
        parts += [f"{name} seen {'>'.join(v)}" for name, v in seen.items() if len(v) > 1]
    if avail.get("outside_detection") is not None:
        parts.append(f"avail {avail['outside_detection']}%")
    if avail.get("majority_writes_outside_detection") is not None:
        parts.append(f"majority w/r {avail['majority_writes_outside_detection']}/{avail['majority_reads_outside_detection']}%")
    slopes = [v["slope_kb_per_min"] for v in report.get("rss", {}).values() if v.get("slope_kb_per_min") is not None]
    halves = [v["slope_second_half_kb_per_min"] for v in report.get("rss", {}).values()
              if v.get("slope_second_half_kb_per_min") is not None]
    if slopes and report["scenario"].startswith("e-"):
        parts.append(f"rss-slope max {max(slopes)} kB/min" + (f" (second half {max(halves)})" if halves else ""))
    failed = [k for k, v in report.get("criteria", {}).items() if not v]
    verdict = "PASS" if report.get("passed") else "FAIL (" + "; ".join(failed) + ")"
    return f"{head} " + " ".join(parts) + f" {verdict}"
