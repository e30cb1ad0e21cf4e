"""Operation histories of a chaos run: what every client invoked, what completed, what every server received.

Theory of operation
-------------------
Each test host appends two JSON-lines files in its data directory, one object per line, flushed at once so
a ``kill -9`` loses at most the line being written (the kernel keeps what was flushed):

* ``history.jsonl`` -- the client side: one :class:`Event` per ``invoke`` and one per outcome (``ok`` or
  ``fail``) of every operation this host issued. ``op`` is unique cluster-wide: ``HOST:RUN:SEQ`` where
  ``RUN`` counts the host's restarts, so a restarted host never reuses an id.
* ``receipts.jsonl`` -- the server side: one :class:`Receipt` per operation delivered to this host's
  handler, written *before* the handler replies. An acknowledged operation (a ``call`` that returned) is
  therefore always in the receiver's receipts unless the fabric lost or invented something.

Timestamps are the real wall clock of the machine (``time.clock_gettime(CLOCK_REALTIME)``), never the
skewed clock a host may show its node (see :mod:`fabric.testing.chaos.host`), so events of different
hosts on one machine compare directly.

Operation kinds: ``write`` (a ``call`` to the ``chaos.record`` service: the acknowledged operation),
``read`` (a ``call`` to ``chaos.read``), ``send`` (a plain ``send``: unacknowledged) and ``broadcast``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Event", "HistoryWriter", "Receipt", "load_events", "load_receipts", "real_time"]

KINDS = ("write", "read", "send", "broadcast")
"""Operation kinds a workload issues."""
ACKED_KINDS = ("write",)
"""Kinds whose success means the receiver recorded the operation (the ones that must never be lost)."""


def real_time() -> float:
    """The machine's wall clock in seconds, unaffected by a host's simulated clock skew."""
    return time.clock_gettime(time.CLOCK_REALTIME)


@dataclass(frozen=True)
class Event:
    """One line of a client history: an operation's ``invoke``, ``ok`` or ``fail``."""

    t: float
    """Real wall-clock seconds."""
    host: str
    """The issuing host."""
    op: str
    """Cluster-unique operation id ``HOST:RUN:SEQ``."""
    kind: str
    """``write``, ``read``, ``send`` or ``broadcast``."""
    type: str
    """``invoke``, ``ok`` or ``fail``."""
    to: str = ""
    """Target host name ('' for a broadcast)."""
    error: str = ""
    """Exception class and message of a ``fail``."""
    value: Any = None
    """Result of an ``ok`` (a read's count, a broadcast's fan-out, a send's ``True``/``False``)."""

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        """Build from a decoded line; raises KeyError/TypeError on a malformed one."""
        return cls(
            t=float(obj["t"]), host=str(obj["host"]), op=str(obj["op"]), kind=str(obj["kind"]), type=str(obj["type"]),
            to=str(obj.get("to", "")), error=str(obj.get("error", "")), value=obj.get("value"),
        )


@dataclass(frozen=True)
class Receipt:
    """One line of a server's receipts: an operation delivered to ``host``'s handler."""

    t: float
    host: str
    """The receiving host."""
    op: str
    sender: str
    """The issuing host."""
    kind: str
    seq: int
    """The sender's per-(run, receiver, kind) sequence number: the order the sender issued them."""

    @property
    def lane(self) -> tuple[str, str, str, str]:
        """The ordering key: (sender, sender's run, receiver, kind)."""
        return (self.sender, self.op.split(":")[-2] if self.op.count(":") >= 2 else "", self.host, self.kind)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Receipt:
        """Build from a decoded line; raises KeyError/TypeError/ValueError on a malformed one."""
        return cls(
            t=float(obj["t"]), host=str(obj["host"]), op=str(obj["op"]), sender=str(obj["sender"]),
            kind=str(obj["kind"]), seq=int(obj["seq"]),
        )


class HistoryWriter:
    """Append-only JSON-lines writer, flushed per line (a killed process keeps every completed line)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- closed by close()

    def write(self, record: Event | Receipt) -> None:
        """Append one record and flush it to the kernel."""
        self._file.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()


def _lines(paths: Iterable[str | os.PathLike[str]]) -> Iterator[dict[str, Any]]:
    for path in paths:
        p = Path(path)
        if not p.exists():
            continue
        with open(p, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue  # the torn last line of a killed writer
                if isinstance(obj, dict):
                    yield obj


def load_events(paths: Iterable[str | os.PathLike[str]]) -> list[Event]:
    """Every well-formed :class:`Event` of the given history files (a torn line is skipped)."""
    out: list[Event] = []
    for obj in _lines(paths):
        try:
            out.append(Event.from_json(obj))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def load_receipts(paths: Iterable[str | os.PathLike[str]]) -> list[Receipt]:
    """Every well-formed :class:`Receipt` of the given receipt files, in file order (arrival order per host)."""
    out: list[Receipt] = []
    for obj in _lines(paths):
        try:
            out.append(Receipt.from_json(obj))
        except (KeyError, TypeError, ValueError):
            continue
    return out
