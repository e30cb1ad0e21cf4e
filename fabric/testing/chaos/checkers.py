"""Checkers over chaos histories: pure functions of :class:`~.history.Event` and :class:`~.history.Receipt`
lists, no I/O, so the delivery and consensus work can reuse them and each is tested on hand-made histories.

* :func:`lost_acknowledged` -- acknowledged operations (a ``write`` whose call returned) that no receiver
  recorded. Must be empty: an acknowledgement means the receiver's handler had written it down.
* :func:`duplicates` -- operations delivered more than once to one receiver. The workload never retries,
  so any duplicate was invented by the fabric.
* :func:`order_violations` -- per lane (sender, sender's run, receiver, kind) the receiver must see the
  sender's sequence numbers in increasing order. Gaps are fine (a failed or lost unacknowledged op).
* :func:`availability` -- the fraction of completed operations that succeeded among those invoked in a
  time window, optionally restricted to some hosts (e.g. the majority side of a partition).
* :func:`delivered_fraction` -- for unacknowledged kinds (``send``): the fraction the receiver recorded.
* :data:`CHECKERS` / :func:`register_checker` / :func:`run_checkers` -- the hook a later checker
  (linearizability of cluster config writes) plugs into: a named function ``(events, receipts) -> dict``
  whose result carries ``"ok": bool``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from .history import ACKED_KINDS, Event, Receipt

__all__ = [
    "CHECKERS",
    "Checker",
    "availability",
    "delivered_fraction",
    "duplicates",
    "lost_acknowledged",
    "order_violations",
    "outcomes",
    "register_checker",
    "run_checkers",
]

Checker = Callable[[Sequence[Event], Sequence[Receipt]], dict[str, Any]]
"""A history checker: returns a JSON-able dict with at least ``"ok": bool``."""


def outcomes(events: Iterable[Event]) -> dict[str, tuple[Event, Event | None]]:
    """Operation id -> (its invoke, its outcome or None when the host died before completing it)."""
    invokes: dict[str, Event] = {}
    done: dict[str, Event] = {}
    for e in events:
        if e.type == "invoke":
            invokes[e.op] = e
        elif e.type in ("ok", "fail"):
            done[e.op] = e
    return {op: (inv, done.get(op)) for op, inv in invokes.items()}


def lost_acknowledged(events: Iterable[Event], receipts: Iterable[Receipt], kinds: Collection[str] = ACKED_KINDS) -> list[str]:
    """Ids of acknowledged operations of ``kinds`` that no receipt records, sorted."""
    seen = {r.op for r in receipts}
    return sorted({e.op for e in events if e.type == "ok" and e.kind in kinds and e.op not in seen})


def duplicates(receipts: Iterable[Receipt]) -> dict[str, int]:
    """Operation id -> times delivered, for operations one receiver recorded more than once."""
    counts = Counter((r.host, r.op) for r in receipts)
    out: dict[str, int] = {}
    for (_host, op), n in counts.items():
        if n > 1:
            out[op] = max(out.get(op, 0), n)
    return out


def order_violations(receipts: Iterable[Receipt], kinds: Collection[str] = ("write", "send")) -> list[dict[str, Any]]:
    """Receipts that arrived after a receipt with a higher sequence number on the same lane, in arrival order."""
    last: dict[tuple[str, str, str, str], int] = {}
    out: list[dict[str, Any]] = []
    for r in receipts:
        if r.kind not in kinds:
            continue
        prev = last.get(r.lane)
        if prev is not None and r.seq < prev:
            out.append({"op": r.op, "seq": r.seq, "after": prev, "receiver": r.host})
        last[r.lane] = r.seq if prev is None else max(prev, r.seq)
    return out


def availability(
    events: Iterable[Event],
    *,
    start: float = float("-inf"),
    end: float = float("inf"),
    hosts: Collection[str] | None = None,
    targets: Collection[str] | None = None,
    kinds: Collection[str] = ("write", "read"),
) -> tuple[int, int]:
    """``(succeeded, completed)`` over operations of ``kinds`` invoked in ``[start, end)`` by ``hosts`` to
    ``targets`` (None: any). Operations without an outcome (the issuer died) are not counted."""
    ok = total = 0
    for inv, out in outcomes(events).values():
        if out is None or inv.kind not in kinds or not start <= inv.t < end:
            continue
        if hosts is not None and inv.host not in hosts:
            continue
        if targets is not None and inv.to not in targets:
            continue
        total += 1
        ok += out.type == "ok"
    return ok, total


def delivered_fraction(events: Iterable[Event], receipts: Iterable[Receipt], kind: str = "send") -> tuple[int, int]:
    """``(delivered, accepted)``: of the ``kind`` operations whose call returned ok, how many a receiver recorded."""
    seen = {r.op for r in receipts}
    accepted = {e.op for e in events if e.type == "ok" and e.kind == kind and e.value is not False}
    return len(accepted & seen), len(accepted)


def _lost(events: Sequence[Event], receipts: Sequence[Receipt]) -> dict[str, Any]:
    lost = lost_acknowledged(events, receipts)
    return {"ok": not lost, "lost": len(lost), "examples": lost[:10]}


def _dups(events: Sequence[Event], receipts: Sequence[Receipt]) -> dict[str, Any]:
    dups = duplicates(receipts)
    return {"ok": not dups, "duplicates": len(dups), "examples": sorted(dups)[:10]}


def _order(events: Sequence[Event], receipts: Sequence[Receipt]) -> dict[str, Any]:
    bad = order_violations(receipts)
    return {"ok": not bad, "violations": len(bad), "examples": bad[:10]}


CHECKERS: dict[str, Checker] = {"lost": _lost, "duplicates": _dups, "order": _order}
"""Checkers every scenario runs, by name. Register more with :func:`register_checker`."""


def register_checker(name: str, checker: Checker) -> None:
    """Add (or replace) a named checker that :func:`run_checkers` runs after every scenario."""
    CHECKERS[name] = checker


def run_checkers(events: Sequence[Event], receipts: Sequence[Receipt]) -> dict[str, dict[str, Any]]:
    """Run every registered checker; name -> its result dict."""
    return {name: fn(events, receipts) for name, fn in CHECKERS.items()}
