"""Foundation 1.x services in one process: config, events, telemetry, errors, protection.

Run: ``python examples/foundation_quickstart.py``. Prints what each step did and ends with "quickstart ok".
"""

from __future__ import annotations

import foundation
from foundation import Config, Events, Infrastructure, Telemetry


def main() -> None:
    # Config: read, subscribe, update (only the 13 updatable paths), get notified.
    print("provider:", Config.get(["ai", "provider"]))
    inbox = Config.subscribe()
    Config.update(["dev", "debug_mode"], True)
    print("notification:", inbox.get_nowait())

    # Events: create, store, query, follow a correlation id.
    flow = foundation.Utils.generate_correlation_id()
    first = Events.new_event("order_placed", {"order": 17}, correlation_id=flow)
    Events.store(first)
    Events.store(Events.new_event("order_paid", {"order": 17}, correlation_id=flow, parent_id=first.event_id))
    print("chain:", [e.event_type for e in Events.get_by_correlation(flow)])

    # Telemetry: counters, histograms, timed spans, a :telemetry-style handler, Prometheus text.
    Telemetry.attach("printer", ["orders", "checkout", "stop"], lambda name, m, md, cfg: print("span:", name, md))
    with Telemetry.span(["orders", "checkout"], {"status": "ok"}):
        Telemetry.emit_counter(["orders", "placed"], {"status": "ok", "order_id": 17})
    Telemetry.emit_histogram(["orders", "amount"], 42.5)
    print("config updates so far:", Telemetry.get_metrics()["foundation"]["config_updates"])
    print([line for line in Telemetry.export_prometheus().splitlines() if line.startswith("orders_placed")])

    # Errors: failures raise FoundationError carrying the 1.x Error (code, severity, retry strategy).
    try:
        Config.update(["ai", "provider"], "openai")
    except foundation.ConfigUpdateForbidden as exc:
        print("refused:", exc.error.code, exc.error.error_type, exc.error.retry_strategy)

    # Infrastructure: rate limit + circuit breaker around a call, limits taken from the config.
    Infrastructure.CircuitBreaker.start_fuse_instance("payments", tolerance=2, refresh=30_000)
    result = Infrastructure.execute_protected("charge", lambda: "charged", rate_limiter=("api_calls", "user-17"),
                                              circuit_breaker="payments")
    print("protected call:", result)

    print("health:", foundation.health()["status"])
    Telemetry.detach("printer")
    Config.reset()
    print("quickstart ok")


if __name__ == "__main__":
    main()
