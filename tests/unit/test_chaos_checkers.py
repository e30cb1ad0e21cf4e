"""The chaos checkers on hand-made histories: lost acknowledged operations, duplicates, order per lane,
availability windows, delivered fractions, the checker registry, and torn history files."""

from __future__ import annotations

import json
from pathlib import Path

from fabric.testing.chaos import (
    CHECKERS,
    Event,
    HistoryWriter,
    Receipt,
    availability,
    delivered_fraction,
    duplicates,
    load_events,
    load_receipts,
    lost_acknowledged,
    order_violations,
    register_checker,
    run_checkers,
)


def ev(t: float, op: str, kind: str, typ: str, to: str = "h1", value: object = None, host: str = "h0") -> Event:
    return Event(t=t, host=host, op=op, kind=kind, type=typ, to=to, value=value)


def rc(op: str, seq: int, kind: str = "write", host: str = "h1", sender: str = "h0") -> Receipt:
    return Receipt(t=0.0, host=host, op=op, sender=sender, kind=kind, seq=seq)


def test_an_acknowledged_write_without_a_receipt_is_lost() -> None:
    events = [ev(1, "h0:0:1", "write", "invoke"), ev(2, "h0:0:1", "write", "ok"),
              ev(3, "h0:0:2", "write", "invoke"), ev(4, "h0:0:2", "write", "ok")]
    assert lost_acknowledged(events, [rc("h0:0:1", 1)]) == ["h0:0:2"]
    assert lost_acknowledged(events, [rc("h0:0:1", 1), rc("h0:0:2", 2)]) == []


def test_failed_unfinished_and_unacknowledged_operations_are_never_lost() -> None:
    events = [
        ev(1, "h0:0:1", "write", "invoke"), ev(2, "h0:0:1", "write", "fail"),  # timed out: may or may not have landed
        ev(3, "h0:0:2", "write", "invoke"),  # the issuer died before the outcome
        ev(4, "h0:0:3", "send", "invoke"), ev(5, "h0:0:3", "send", "ok", value=True),  # plain send: no ack
        ev(6, "h0:0:4", "read", "invoke"), ev(7, "h0:0:4", "read", "ok", value=3),
    ]
    assert lost_acknowledged(events, []) == []


def test_a_receipt_recorded_twice_by_one_receiver_is_a_duplicate_but_two_receivers_are_not() -> None:
    assert duplicates([rc("h0:0:1", 1), rc("h0:0:1", 1), rc("h0:0:1", 1), rc("h0:0:2", 2)]) == {"h0:0:1": 3}
    broadcast = [rc("h0:0:5", 1, "broadcast", host="h1"), rc("h0:0:5", 1, "broadcast", host="h2")]
    assert duplicates(broadcast) == {}


def test_order_is_checked_per_lane_and_gaps_are_allowed() -> None:
    ordered = [rc("h0:0:1", 1), rc("h0:0:3", 3), rc("h0:0:7", 4), rc("h0:0:2", 1, "send")]
    assert order_violations(ordered) == []
    swapped = [rc("h0:0:1", 1), rc("h0:0:3", 3), rc("h0:0:2", 2)]
    assert order_violations(swapped) == [{"op": "h0:0:2", "seq": 2, "after": 3, "receiver": "h1"}]
    # a restarted sender (run 1) starts its sequence again: a new lane, not a violation
    restarted = [rc("h0:0:5", 5), rc("h0:1:1", 1)]
    assert order_violations(restarted) == []
    # different receivers are different lanes
    assert order_violations([rc("h0:0:4", 4, host="h1"), rc("h0:0:5", 1, host="h2")]) == []
    # broadcasts are not ordered by default
    assert order_violations([rc("h0:0:9", 2, "broadcast"), rc("h0:0:8", 1, "broadcast")]) == []


def test_availability_counts_completed_operations_invoked_in_the_window_by_host_and_target() -> None:
    events = [
        ev(1, "a", "write", "invoke"), ev(1.5, "a", "write", "ok"),
        ev(2, "b", "read", "invoke", to="h3"), ev(4, "b", "read", "fail", to="h3"),
        ev(3, "c", "write", "invoke"),  # no outcome: not counted
        ev(5, "d", "write", "invoke", host="h2"), ev(5.1, "d", "write", "ok", host="h2"),
        ev(6, "e", "send", "invoke"), ev(6.1, "e", "send", "ok", value=True),  # not a counted kind
    ]
    assert availability(events) == (2, 3)
    assert availability(events, start=1.5, end=5) == (0, 1)
    assert availability(events, targets={"h1"}) == (2, 2)
    assert availability(events, hosts={"h2"}) == (1, 1)
    assert availability(events, kinds=("send",)) == (1, 1)


def test_delivered_fraction_counts_accepted_sends_that_arrived() -> None:
    events = [ev(1, "s1", "send", "ok", value=True), ev(1, "s2", "send", "ok", value=True),
              ev(1, "s3", "send", "ok", value=False)]
    assert delivered_fraction(events, [rc("s1", 1, "send")]) == (1, 2)


def test_run_checkers_reports_each_registered_checker_and_accepts_new_ones() -> None:
    events = [ev(1, "x", "write", "invoke"), ev(2, "x", "write", "ok")]
    results = run_checkers(events, [])
    assert results["lost"] == {"ok": False, "lost": 1, "examples": ["x"]}
    assert results["duplicates"]["ok"] and results["order"]["ok"]
    before = dict(CHECKERS)
    try:
        register_checker("linearizable", lambda evs, rcs: {"ok": len(evs) == 2})
        assert run_checkers(events, [])["linearizable"] == {"ok": True}
    finally:
        CHECKERS.clear()
        CHECKERS.update(before)


def test_history_files_round_trip_and_a_torn_or_foreign_line_is_skipped(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "history.jsonl")
    w.write(ev(1.0, "h0:0:1", "write", "invoke"))
    w.write(ev(2.0, "h0:0:1", "write", "ok", value="ok"))
    w.close()
    r = HistoryWriter(tmp_path / "receipts.jsonl")
    r.write(rc("h0:0:1", 1))
    r.close()
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write(json.dumps({"t": 3}) + "\n[1, 2]\n" + '{"t": 4.0, "host": "h0", "op": "h0:0:2", "ki')  # kill -9 mid-line
    events = load_events([tmp_path / "history.jsonl", tmp_path / "missing.jsonl"])
    assert [(e.op, e.type, e.value) for e in events] == [("h0:0:1", "invoke", None), ("h0:0:1", "ok", "ok")]
    assert load_receipts([tmp_path / "receipts.jsonl"]) == [rc("h0:0:1", 1)]
    assert lost_acknowledged(events, load_receipts([tmp_path / "receipts.jsonl"])) == []
