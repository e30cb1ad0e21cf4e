"""Structure-aware mutation of msgpack-native values (the fuzzers' one mutation engine).

A fuzz input starts as a *valid* message (harvested from a simulated cluster or built by the wire
encoders), so it gets past the header checks; a mutation then changes one place in its structure: a leaf
replaced by a hostile value (wrong type, huge or negative int, id of the wrong length, deep nesting, a
long string), a key deleted or added, a list element duplicated many times, a container turned into
another kind. :class:`Mutation` is plain data (a path selector, a kind and a value), so hypothesis can
generate and shrink it and the random engine can draw it from a seeded :class:`random.Random`: both
fuzzers apply mutations with :func:`apply`.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("replace", "delete", "insert", "duplicate", "retype", "nest", "bytes")
"""What a mutation does at the place it selects (see :func:`apply`)."""

KEYS = ("s", "c", "l", "i", "r", "q", "x", "ct", "f", "sv", "to", "ec", "et", "em", "vn", "vx", "v", "nm", "in", "ro",
        "ep", "md", "op", "ts", "tp", "d", "k", "e", "p", "m", "id", "t", "h", "n", "w", "a", "")
"""Keys an inserted entry gets most of the time: the wire header keys and the membership bodies' keys."""

MAX_PATHS = 256
"""Places considered per value (a selector picks one of the first MAX_PATHS in depth-first order)."""


@dataclass(frozen=True)
class Mutation:
    """One structural change: ``kind`` (one of :data:`KINDS`) at the place ``selector`` picks (modulo the
    number of places), using ``value`` where the kind needs one."""

    selector: int
    kind: str
    value: Any = None


def deep_nesting(depth: int) -> Any:
    """A list nested ``depth`` deep (msgpack decoders and recursive validators must cope)."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def hostile_value(rng: random.Random) -> Any:
    """A value a hostile peer might put anywhere: msgpack-native, aimed at type and range checks."""
    pick = rng.randrange(24)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice((0, 1, -1, 255, 256, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)))
    if pick == 3:
        return rng.randint(-(2**63), 2**64 - 1)
    if pick == 4:
        return rng.choice((0.0, -1.5, 1e308, math.inf, -math.inf, math.nan))
    if pick == 5:
        return ""
    if pick == 6:
        return "x" * rng.choice((255, 256, 4096))
    if pick == 7:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(1, 12)))
    if pick == 8:
        return b""
    if pick in (9, 10):
        return rng.randbytes(16)
    if pick == 11:
        return rng.randbytes(rng.choice((1, 15, 17, 27, 28, 29, 40)))
    if pick == 12:
        return rng.randbytes(rng.randrange(64, 2048))
    if pick == 13:
        return []
    if pick == 14:
        return {}
    if pick == 15:
        return deep_nesting(rng.choice((8, 64, 200)))
    if pick == 16:
        return [hostile_value(rng) for _ in range(rng.randrange(1, 6))]
    if pick == 17:
        return {rng.choice(("e", "p", "o", "i", "m", "in", "id", "s", "t", "h", "n", "x", "")): hostile_value(rng)
                for _ in range(rng.randrange(1, 5))}
    if pick == 18:
        return [rng.randbytes(16) for _ in range(rng.randrange(1, 300))]
    if pick == 19:
        return {"e": rng.choice((0, 1, 2**63 - 1, 2**63, -1)), "p": rng.randbytes(16),
                "o": rng.choice(("full-mesh", "hyparview", "client-server", "static", "nope"))}
    if pick == 20:
        return {"id": rng.randbytes(16), "nm": "x", "in": rng.randrange(2**63),
                "md": {}, "ep": {"membership": ["control", f"tcp://127.0.0.1:{rng.randrange(1, 65536)}", 1]}}
    if pick == 21:
        return {"membership": [rng.choice(("control", "bulk", "broadcast", "x")),
                               rng.choice(("tcp://127.0.0.1:1", "not an endpoint", "", "ipc://" + "a" * 200)),
                               rng.choice((1, 0, -1, 255, 256, 2**40))]}
    if pick == 22:
        return {str(i): "v" for i in range(rng.randrange(1, 200))}
    return rng.randrange(-1000, 1000)


def random_mutation(rng: random.Random) -> Mutation:
    """A mutation drawn from ``rng`` (the random engine's counterpart of the hypothesis strategy)."""
    kind = rng.choice(KINDS)
    return Mutation(rng.randrange(1 << 16), kind, hostile_value(rng) if kind in ("replace", "insert") else rng.randrange(1 << 16))


def _places(value: Any, path: tuple[Any, ...], out: list[tuple[Any, ...]]) -> None:
    if len(out) >= MAX_PATHS:
        return
    out.append(path)
    if isinstance(value, dict):
        for key in list(value)[:32]:
            _places(value[key], (*path, key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value[:32]):
            _places(item, (*path, i), out)


def _get(root: Any, path: Sequence[Any]) -> Any:
    for step in path:
        root = root[step]
    return root


def _set(root: Any, path: Sequence[Any], new: Any) -> Any:
    if not path:
        return new
    parent = _get(root, path[:-1])
    parent[path[-1]] = new
    return root


def _delete(root: Any, path: Sequence[Any]) -> Any:
    if not path:
        return None
    parent = _get(root, path[:-1])
    del parent[path[-1]]
    return root


def _mutate_bytes(value: bytes | str, n: int) -> Any:
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        out = _mutate_bytes(raw, n)
        return out.decode("utf-8", "replace") if isinstance(out, bytes) else out
    if not value:
        return bytes((n & 0xFF,))
    pos = n % len(value)
    how = (n >> 8) % 5
    if how == 0:  # flip one byte
        return value[:pos] + bytes((value[pos] ^ (1 + (n >> 3) % 255),)) + value[pos + 1:]
    if how == 1:  # truncate
        return value[:pos]
    if how == 2:  # extend by one byte
        return value + bytes((n & 0xFF,))
    if how == 3:  # repeat
        return value * (2 + n % 7)
    return value[:pos] + value[pos + 1:]  # drop one byte


def _n(value: Any) -> int:
    """A mutation's numeric argument (a non-number picks 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def apply(value: Any, mutations: Sequence[Mutation]) -> Any:
    """``value`` (deep-copied first, never changed in place) with ``mutations`` applied in order."""
    root = copy.deepcopy(value)
    for m in mutations:
        places: list[tuple[Any, ...]] = []
        _places(root, (), places)
        path = places[m.selector % len(places)]
        here = _get(root, path)
        if m.kind == "replace":
            root = _set(root, path, copy.deepcopy(m.value))
        elif m.kind == "delete":
            root = _delete(root, path)
        elif m.kind == "insert":
            if isinstance(here, dict):
                key = KEYS[m.selector % len(KEYS)] if m.selector % 4 else str(m.selector)
                here[key] = copy.deepcopy(m.value)
            elif isinstance(here, list):
                here.insert(m.selector % (len(here) + 1), copy.deepcopy(m.value))
            else:
                root = _set(root, path, [here, copy.deepcopy(m.value)])
        elif m.kind == "duplicate":
            if isinstance(here, list) and here:
                here.extend(copy.deepcopy(here[:4]) * (1 + _n(m.value) % 64))
            elif isinstance(here, dict) and here:
                for i in range(1 + _n(m.value) % 64):
                    here[f"dup{i}"] = copy.deepcopy(next(iter(here.values())))
            else:
                root = _set(root, path, [here] * (1 + _n(m.value) % 64))
        elif m.kind == "retype":
            if isinstance(here, dict):
                new: Any = list(here.values())
            elif isinstance(here, list):
                new = {i: v for i, v in enumerate(here)}
            elif isinstance(here, bytes):
                new = here.decode("latin-1")
            elif isinstance(here, str):
                new = here.encode()
            elif isinstance(here, bool):
                new = int(here)
            elif isinstance(here, int):
                new = float(here) if abs(here) < 2**53 else str(here)
            else:
                new = b""
            root = _set(root, path, new)
        elif m.kind == "nest":
            root = _set(root, path, [here] if _n(m.value) % 2 else {"x": here})
        elif m.kind == "bytes":
            if isinstance(here, bytes | str):
                root = _set(root, path, _mutate_bytes(here, _n(m.value)))
            elif isinstance(here, int) and not isinstance(here, bool):
                root = _set(root, path, here ^ (1 << (_n(m.value) % 64)))
    return root


__all__ = ["KINDS", "MAX_PATHS", "Mutation", "apply", "deep_nesting", "hostile_value", "random_mutation"]
