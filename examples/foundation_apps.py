"""Explicit Foundation apps: two tenants side by side, and the default app created only when used.

Run: ``python examples/foundation_apps.py``. Each tenant is a :class:`foundation.FoundationApp` with its
own config, events, telemetry and registries; nothing one tenant does shows up in the other or in the
default app behind ``foundation.Config``/``Events``/``Telemetry``, which importing ``foundation`` does not
create. Ends with "apps ok".
"""

from __future__ import annotations

import foundation
from foundation import Error, ErrorContext, FoundationApp, ManualClock


class Mailer:
    """A registrable service: the registries treat it as alive while ``is_alive()`` is True."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    def is_alive(self) -> bool:
        return True


def run_tenant(app: FoundationApp, name: str) -> None:
    """What one tenant does: config, an event, a registered service, a failed operation."""
    if name == "acme":
        app.config.update(["dev", "debug_mode"], True)
    app.events.store(app.events.new_event("signup", {"tenant": name}))
    app.service_registry.register(app.namespace, "mailer", Mailer(f"noreply@{name}.example"))
    print(f"{name} mailer:", app.service_registry.lookup(app.namespace, "mailer").sender)
    try:  # the duration gauge and the error counter go to this tenant's telemetry
        ErrorContext.with_context(app.error_context("Billing", "charge"), lambda: 1 / 0)
    except foundation.FoundationError as exc:
        print(f"{name} charge failed:", exc.error.code, exc.error.error_type)
    app.collect_error_metrics(Error.new("timeout"))


def main() -> None:
    print("default app created at start:", foundation.stats()["default_app_created"])
    with FoundationApp(clock=ManualClock()) as acme, FoundationApp(clock=ManualClock()) as globex:
        run_tenant(acme, "acme")
        run_tenant(globex, "globex")
        print("acme debug_mode:", acme.config.get(["dev", "debug_mode"]))
        print("globex debug_mode:", globex.config.get(["dev", "debug_mode"]))
        print("acme signups:", [e.data["tenant"] for e in acme.events.query(event_type="signup")])
        errors = acme.telemetry.get_metrics()["foundation"]["errors"]
        print("acme error counters:", sorted(f"{cat}.{sub}" for cat, subs in errors.items() for sub in subs))
        print("default app created by the tenants:", foundation.stats()["default_app_created"])

    # The 1.x facades still work with no setup: the default app is created here, on first use.
    print("provider:", foundation.Config.get(["ai", "provider"]))
    print("default debug_mode:", foundation.Config.get(["dev", "debug_mode"]))
    print("default signups:", foundation.Events.query(event_type="signup"))
    print("default mailer:", foundation.ProcessRegistry.lookup("production", "mailer"))
    print("default app created:", foundation.stats()["default_app_created"])
    print("apps ok")


if __name__ == "__main__":
    main()
