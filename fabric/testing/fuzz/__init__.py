"""Fuzzing the wire decoder and every message handler (issue 16, item 6).

Two engines drive the same harnesses (:mod:`.targets`) with the same structure-aware mutations
(:mod:`.mutate`):

* **atheris** (coverage-guided libFuzzer, the ``fuzz`` extra: ``pip install -e '.[fuzz]'``): inputs are
  msgpack-encoded structured items; a custom mutator decodes one, applies structural mutations (and now
  and then libFuzzer's own byte mutations) and re-encodes it, so coverage feedback steers *which*
  valid-but-hostile messages are kept;
* **random** (no extra dependency): seeded random mutations of the valid corpus, the fallback when
  atheris is not installed (``--engine random`` forces it).

One command runs a target: ``python -m fabric.testing.fuzz decoder --runs 100000`` (targets ``decoder``,
``membership``, ``node``; ``all`` runs each). It prints one line per target (inputs, seconds, engine) and
exits 1 on the first crash, printing the traceback and the input that caused it. The hypothesis property
tests in ``tests/property/test_fuzz_*.py`` use the same harnesses with hypothesis strategies. See
docs/security.md, "Fuzzing".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from .mutate import KINDS, Mutation, apply, hostile_value, random_mutation
from .targets import (
    TARGETS,
    DecoderTarget,
    InvariantViolation,
    MembershipTarget,
    NodeTarget,
    check_sizes,
    container_sizes,
    membership_corpus,
)


def random_item(corpus: list[Any], rng: random.Random) -> Any:
    """A corpus item with one to four random mutations (raw frames also get byte-level ones)."""
    item = rng.choice(corpus)
    try:
        return apply(item, [random_mutation(rng) for _ in range(rng.randint(1, 4))])
    except RecursionError:  # a hostile value nested too deep for the mutator itself: use the item as it is
        return item


def run_random(target: str, runs: int, *, seed: int = 0, bound_every: int = 2000,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Feed ``runs`` mutated inputs to ``target`` with the random engine; returns ``{"target", "inputs",
    "seconds", "engine", "sizes"}``. Raises :class:`InvariantViolation` (with the input in ``.item``) on
    the first crash."""
    rng = random.Random(seed)
    harness = TARGETS[target](seed)
    started = time.monotonic()
    sizes: dict[str, int] = {}
    try:
        corpus = harness.corpus()
        for n in range(1, runs + 1):
            item = random_item(corpus, rng) if rng.random() < 0.97 else rng.choice(corpus)
            try:
                harness.feed(item)
                if n % bound_every == 0 or n == runs:
                    sizes = harness.check_bounds()
            except InvariantViolation as exc:
                exc.item = item  # type: ignore[attr-defined]
                raise
            if progress is not None and n % 100000 == 0:
                progress(f"{target}: {n} inputs, {time.monotonic() - started:.0f} s")
    finally:
        close = getattr(harness, "close", None)
        if close is not None:
            close()
    return {"target": target, "inputs": runs, "seconds": round(time.monotonic() - started, 2), "engine": "random",
            "sizes": sizes}


__all__ = ["KINDS", "TARGETS", "DecoderTarget", "InvariantViolation", "MembershipTarget", "Mutation", "NodeTarget",
           "apply", "check_sizes", "container_sizes", "hostile_value", "membership_corpus", "random_item",
           "random_mutation", "run_random"]
