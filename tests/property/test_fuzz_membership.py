"""Structured fuzzing of the membership, overlay and topology handlers: messages harvested from simulated
clusters of every overlay, mutated, fed to one MembershipDriver per overlay (full-mesh, HyParView +
Plumtree, client-server, static). No exception may leave the driver (bad bodies are counted), the
topology epoch stays in the protocol's range, and no state outgrows its bound."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fabric.config import OVERLAYS
from fabric.testing.fuzz import MembershipTarget, Mutation, apply, random_item
from tests.property._fuzz import FUZZ, hostile, mutations

TARGET = MembershipTarget(seed=3)
CORPUS = TARGET.corpus()
OPS = sorted({item[2] for item in CORPUS})


def test_the_corpus_covers_every_overlay_and_both_message_kinds() -> None:
    assert {item[0] for item in CORPUS} == set(range(len(OVERLAYS)))
    assert {item[1] for item in CORPUS} == {False, True}
    assert {"hb", "join", "sync", "topo", "gossip", "ihave", "shuffle", "forward_join"} <= set(OPS)


@FUZZ
@given(st.sampled_from(CORPUS), mutations)
def test_mutated_bodies_never_escape_the_driver(item: list[Any], muts: list[Mutation]) -> None:
    index, tree, op, source, body = item
    TARGET.feed([index, tree, op, source, apply(body, muts)])


@FUZZ
@given(st.integers(0, len(OVERLAYS) - 1), st.booleans(), st.sampled_from([*OPS, "", "nope", "x" * 255]), st.integers(0, 8),
       hostile)
def test_any_body_for_any_op_never_escapes_the_driver(index: int, tree: bool, op: str, source: int, body: Any) -> None:
    TARGET.feed([index, tree, op, source, body])


@FUZZ
@given(st.integers(0, len(OVERLAYS) - 1), st.integers(min_value=-(2**64), max_value=2**65), st.binary(min_size=0, max_size=20),
       st.sampled_from([*OVERLAYS, "mesh", ""]), st.sampled_from(["topo", "hb", "sync", "gossip"]))
def test_topology_states_with_any_epoch_keep_the_epoch_in_range(index: int, epoch: int, proposer: bytes, overlay: str,
                                                                op: str) -> None:
    TARGET.feed([index, op == "gossip", op, 8, {"tp": {"e": epoch, "p": proposer, "o": overlay}}])


def test_state_stays_bounded_after_many_hostile_inputs() -> None:
    rng = random.Random(7)
    before = TARGET.fed
    for _ in range(4000):
        TARGET.feed(random_item(CORPUS, rng))
    sizes = TARGET.check_bounds()
    assert sizes, "the bound check measured nothing"
    assert TARGET.fed - before > 2000  # most mutated items keep the [overlay, tree, op, source, body] shape
