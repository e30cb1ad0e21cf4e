"""Structured fuzzing of a running node's receive path (peers' HELLO handling, calls, subscriptions,
membership, batches) on the in-memory transport: valid messages of every type on every channel kind,
mutated in their headers and payloads; nothing escapes, and the node's state stays bounded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabric import wire
from fabric.testing.fuzz import Mutation, NodeTarget, apply, random_item
from tests.property._fuzz import FUZZ, hostile, mutations


@pytest.fixture(scope="module")
def target() -> Iterator[NodeTarget]:
    t = NodeTarget(seed=5)
    try:
        yield t
    finally:
        t.close()


@FUZZ
@given(st.data(), mutations)
def test_mutated_messages_never_escape_the_receive_path(target: NodeTarget, data: st.DataObject,
                                                          muts: list[Mutation]) -> None:
    item = data.draw(st.sampled_from(target.corpus()))
    target.feed(apply(item, muts))


@FUZZ
@given(st.integers(0, 4), st.sampled_from(list(wire.MsgType)), hostile, st.lists(hostile, max_size=3), st.integers(0, 999))
def test_any_header_for_any_type_never_escapes(target: NodeTarget, channel: int, mtype: int, header: Any,
                                               payload: list[Any], route: int) -> None:
    if isinstance(header, dict):
        header.setdefault("s", bytes(range(16)))
    target.feed({"c": channel, "m": [{"t": int(mtype), "v": 1, "h": header}, *payload], "r": route})


def test_node_state_stays_bounded_after_many_hostile_inputs(target: NodeTarget) -> None:
    rng = random.Random(11)
    corpus = target.corpus()
    for _ in range(3000):
        target.feed(random_item(corpus, rng))
    sizes = target.check_bounds()
    # the walker sees the maps remote input fills (the sequence table is a generational LRU of two maps)
    assert "Peers.clients" in sizes and "LruCounterMap.hot" in sizes and "LruCounterMap._cold" in sizes
    assert target.node.running
    assert sum(target.node.errors.values()) > 0  # the hostile inputs were counted, not delivered
