"""Stress: 50 threads hammer config, events, telemetry, registries, a worker pool and the rate limiter for a
bounded time; the totals must be exact and the final state consistent. ``FOUNDATION_STRESS_SECONDS`` sets the duration."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import foundation
from foundation import ManualClock


@dataclass
class Tally:
    stored: int = 0
    batches: int = 0
    updates: int = 0
    failed_updates: int = 0
    counters: int = 0
    reads: int = 0
    lookups: int = 0
    leader_wins: int = 0
    allowed: int = 0
    pool_uses: int = 0
    denied: int = 0
    values_written: set[int] = field(default_factory=set)


class Proc:
    def is_alive(self) -> bool:
        return True


class Conn:
    """A pooled worker that detects two threads using it at once."""

    def __init__(self) -> None:
        self.busy = False
        self.uses = 0

    def use(self) -> None:
        assert not self.busy, "a worker was checked out twice"
        self.busy = True
        self.uses += 1
        self.busy = False


def hammer(threads: int, *, seconds: float | None = None, ops: int | None = None, seed: int = 7) -> dict[str, Any]:
    """Run the workload; return the app's final figures next to the per-thread tallies."""
    assert (seconds is None) != (ops is None)
    clock = ManualClock()
    app = foundation.start_app(config={"storage": {"hot": {"max_events": 50_000_000}}}, clock=clock)
    ns = app.namespace
    conns: list[Conn] = []

    def make_conn() -> Conn:
        conns.append(Conn())
        return conns[-1]

    app.infrastructure.ConnectionManager.start_pool("pool", worker_factory=make_conn, size=4, max_overflow=2)
    tallies = [Tally() for _ in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    deadline_box: list[float] = []
    rate_limit = 500

    def worker(i: int) -> None:
        rng = random.Random(seed + i)
        tally = tallies[i]
        me = Proc()
        try:
            barrier.wait(30)
            foundation.ProcessRegistry.register(ns, f"worker-{i}", me)
            try:
                foundation.ProcessRegistry.register(ns, "leader", me)
                tally.leader_wins += 1
            except foundation.AlreadyRegistered:
                pass
            n = 0
            while (ops is not None and n < ops) or (ops is None and time.monotonic() < deadline_box[0]):
                n += 1
                r = rng.random()
                if r < 0.30:
                    app.events.store(app.events.new_event("stress", {"t": i, "n": n}))
                    tally.stored += 1
                elif r < 0.35:
                    batch = [app.events.new_event("stress", {"t": i, "n": n, "k": k}) for k in range(3)]
                    if rng.random() < 0.3:  # poison the batch: nothing of it may be stored
                        batch.append(foundation.Event("stress", -1, 0))
                        try:
                            app.events.store_batch(batch)
                            raise AssertionError("a poisoned batch was stored")
                        except foundation.ValidationFailed:
                            pass
                    else:
                        app.events.store_batch(batch)
                        tally.stored += 3
                        tally.batches += 1
                elif r < 0.55:
                    app.telemetry.emit_counter(["stress", "ops"], {"status": "ok", "thread": i})
                    tally.counters += 1
                elif r < 0.60:
                    value = rng.choice([rng.randint(1, 10_000), 0])  # 0 is invalid (must be > 0)
                    try:
                        app.config.update(["interface", "max_results"], value)
                        tally.updates += 1
                        tally.values_written.add(value)
                    except foundation.ValidationFailed:
                        tally.failed_updates += 1
                elif r < 0.80:
                    app.config.get(["interface", "max_results"])
                    app.config.get_with_default(["ai", "provider"], None)
                    tally.reads += 1
                elif r < 0.85:
                    app.infrastructure.ConnectionManager.with_connection("pool", Conn.use, timeout=30)
                    tally.pool_uses += 1
                elif r < 0.90:
                    assert foundation.ServiceRegistry.lookup(ns, f"worker-{i}") is me
                    foundation.ProcessRegistry.lookup(ns, f"worker-{rng.randrange(threads)}")
                    tally.lookups += 1
                else:
                    try:
                        app.infrastructure.RateLimiter.check_rate("shared", "op", rate_limit, 10**9)
                        tally.allowed += 1
                    except foundation.RateLimitExceeded:
                        tally.denied += 1
        except BaseException as exc:  # surfaced by the assertions below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,), name=f"stress-{i}") for i in range(threads)]
    deadline_box.append(time.monotonic() + (seconds or 0) + 1.0)
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    try:
        assert not any(t.is_alive() for t in workers), "a worker did not finish"
        assert not errors, errors[:3]
        stats = app.events.stats()
        metrics = app.telemetry.get_metrics()
        result = {
            "tallies": tallies,
            "stats": stats,
            "stress_events": len(app.events.query(event_type="stress")),
            "config_events": len(app.events.query(event_type="config_updated")),
            "counter_total": metrics["stress"]["ops"]["counter"] if "stress" in metrics else 0,
            "config_updates_metric": metrics.get("foundation", {}).get("config_updates", 0),
            "updates_count": app.config.status()["updates_count"],
            "final_value": app.config.get(["interface", "max_results"]),
            "services": foundation.ProcessRegistry.list_services(ns),
            "rate_status": app.infrastructure.RateLimiter.get_status("shared", "op"),
            "rate_limit": rate_limit,
            "threads": threads,
            "health": app.health()["status"],
            "pool": app.infrastructure.ConnectionManager.get_pool_status("pool"),
            "conn_uses": sum(c.uses for c in conns),
        }
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(ns)
    return result


def check(result: dict[str, Any]) -> None:
    """Exact totals and a consistent final state."""
    tallies: list[Tally] = result["tallies"]
    stored = sum(t.stored for t in tallies)
    updates = sum(t.updates for t in tallies)
    assert result["stress_events"] == stored
    assert result["config_events"] == updates
    assert result["stats"]["events_stored"] == stored + updates
    assert result["stats"]["current_event_count"] == stored + updates
    assert result["stats"]["events_dropped"] == 0
    assert result["counter_total"] == sum(t.counters for t in tallies)
    assert result["updates_count"] == updates == result["config_updates_metric"]
    written = set().union(*(t.values_written for t in tallies))
    assert result["final_value"] in written if updates else result["final_value"] == 1000
    assert sum(t.leader_wins for t in tallies) == 1
    assert len(result["services"]) == result["threads"] + 1 + 4  # workers, leader, app services
    allowed = sum(t.allowed for t in tallies)
    assert allowed <= result["rate_limit"]
    if sum(t.denied for t in tallies):
        assert allowed == result["rate_limit"]  # denials only once the window is exactly full
    assert result["rate_status"]["current_count"] == allowed
    assert result["health"] == "healthy"
    assert result["conn_uses"] == sum(t.pool_uses for t in tallies)
    pool = result["pool"]
    assert (pool["in_use"], pool["overflow"], pool["available"], pool["waiting"]) == (0, 0, 4, 0)


def test_fifty_threads_hammer_for_a_bounded_time() -> None:
    seconds = float(os.environ.get("FOUNDATION_STRESS_SECONDS", "3"))
    result = hammer(50, seconds=seconds)
    check(result)
    ops = sum(t.stored + t.counters + t.reads + t.lookups + t.updates for t in result["tallies"])
    print(f"\nstress: 50 threads, {seconds}s: {ops} operations, {result['stats']['events_stored']} events stored")
    assert sum(t.stored for t in result["tallies"]) > 0
